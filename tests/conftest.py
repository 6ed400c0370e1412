"""Shared fixtures: tiny randomly initialised Qwen2 models, built offline in seconds, for pipeline
tests that need real torch sampling and training: one with a byte-level BPE tokenizer trained on
arith prompts, and one whose vocabulary holds whole answer statements."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from lmsi.tasks import get_task

    out = tmp_path_factory.mktemp("tiny-model")
    task = get_task("arith")
    corpus = [task.prompt(e.question, "fewshot_cot", 3) for e in task.load("train", 50)]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    return _tiny_qwen2(out, tok, max_position_embeddings=2048)


@pytest.fixture(scope="session")
def answer_model_dir(tmp_path_factory):
    """A tiny random Qwen2 whose vocabulary holds four whole answer statements (' The answer is 1.'
    to ' 4.') beside ~40 byte-level pieces, so its random completions do state answers, and
    different ones. initializer_range=0.2: at the default 0.02 the logits of a 32-wide model stay
    within about +-0.6, and LoRA (embeddings and norms frozen) cannot make any answer likely
    (measured by the GRPO test: mean reward of the first 5 -> last 5 steps 0.31 -> 0.29 at lr 0.01
    over 20 steps, 0.34 -> 0.32 at lr 0.05 over 40). Its tokenizer knows only the characters of its
    small corpus and drops the others from a prompt. Used by the GRPO test (test_methods.py) and the
    kill -9 test (test_reliability.py), whose `backend=hf` runs need confident votes to build a
    training set."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("answer-model")
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    corpus = [f"Q: pick {c} A: {w}" for c in ("red", "blue", "green", "gold") for w in ("hmm so", "so hmm")]
    tk.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=40, special_tokens=["<|endoftext|>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.add_tokens([f" The answer is {n}." for n in (1, 2, 3, 4)])
    return _tiny_qwen2(out, tok, max_position_embeddings=64, initializer_range=0.2)


def _tiny_qwen2(out, tok, **extra):
    """A 2-layer, 32-wide random Qwen2 for `tok`, seeded, saved into `out` beside the tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok.save_pretrained(out)
    torch.manual_seed(0)
    shape = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    )
    cfg = Qwen2Config(
        vocab_size=len(tok),
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
        **{**shape, **extra},
    )
    Qwen2ForCausalLM(cfg).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def one_thread():
    """The tiny model's matmuls are too small to split: two threads contending for a busy
    2-core machine made DPO steps ~20x slower than one."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
