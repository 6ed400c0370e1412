"""GRPO's reward pieces: pseudo-labels from N votes, which prompts to train on, the reward, the cap.

A prompt's pseudo-label is the majority of `train.grpo_votes` answers sampled BEFORE training
(the round's sampled paths, topped up with fresh samples when sample.m < N), never the majority
of the group being trained on: a group that agrees on a wrong answer would be rewarded in full,
and a vote larger than the group is steadier (TTRL votes over 64 answers, trains on 32). Prompts
whose label has less than `train.grpo_threshold` of the votes are left out. A completion earns 1
when its answer equals the label, 0 when it differs, `train.grpo_no_answer` (-0.5) when it states
none, so that answering wrongly ranks above rambling to the cap.
"""

from __future__ import annotations

import contextlib
import math

from ..backends.base import cut_at_stop
from ..config import RunConfig, TrainConfig
from ..tasks import Task
from ..vote import majority

AUTO_FALLBACK = 256  # the cap when train.grpo_max_tokens=0 and no sampled path is known


def answer_of(task: Task, completion: str, choices=()) -> str | None:
    # generation runs to the token cap: without the cut, a model that invents a next
    # 'Q: ... A: The answer is 9.' would be read as 9
    return task.extract(cut_at_stop(completion, task.stop)[0], choices=tuple(choices or ()))


def pseudo_label(answers: list[str | None], votes: int) -> tuple[str | None, float]:
    """The majority of the first `votes` answers and its share of them (abstentions count)."""
    top, share, _ = majority(list(answers[:votes]))
    return top, share


def label_prompts(rows: list[dict], votes: int) -> list[dict]:
    """Each prompt row with `label` and `share` from its `answers` (the first `votes` of them)."""
    out = []
    for r in rows:
        label, share = pseudo_label(r.get("answers") or [], votes)
        out.append({**r, "label": label, "share": round(share, 4)})
    return out


def select_prompts(rows: list[dict], threshold: float) -> tuple[list[dict], int]:
    """(prompts trained on, how many were left out): a label with share >= threshold is needed."""
    kept = [r for r in rows if r["label"] is not None and r["share"] >= threshold]
    return kept, len(rows) - len(kept)


def label_rewards(answers: list[str | None], label: str, no_answer: float) -> list[float]:
    return [no_answer if a is None else 1.0 if a == label else 0.0 for a in answers]


def make_label_reward(task: Task, no_answer: float):
    """The reward function GRPOTrainer calls: each completion against its row's `label` column.
    Per completion, so no group has to be gathered across processes."""

    def label_reward(prompts: list[str], completions: list[str], label: list[str], choices=None, **_) -> list[float]:
        choices = choices or [()] * len(completions)
        return [
            label_rewards([answer_of(task, c, ch)], lab, no_answer)[0]
            for c, lab, ch in zip(completions, label, choices)
        ]

    return label_reward


def auto_cap(lengths: list[int]) -> int:
    """1.25x the 95th percentile (nearest rank) of the sampled paths' token lengths: room for
    the task's reasoning without letting the rare runaway path set the cap."""
    if not lengths:
        return AUTO_FALLBACK
    ranked = sorted(lengths)
    p95 = ranked[max(0, math.ceil(0.95 * len(ranked)) - 1)]
    return max(8, math.ceil(1.25 * p95))


def completion_cap(cfg: TrainConfig, tok, rows: list[dict]) -> int:
    """train.grpo_max_tokens, or (0) auto_cap over the rows' sampled `paths`."""
    if cfg.grpo_max_tokens:
        return cfg.grpo_max_tokens
    return auto_cap([len(tok(p, add_special_tokens=False)["input_ids"]) for r in rows for p in r.get("paths") or ()])


def stop_criteria(tok, stop: tuple[str, ...], prompt_len: int):
    """Generation ends a row once its completion holds one of the task's stop strings, where a
    sampled path ends, instead of running on into an invented next question up to the cap.
    (transformers' own stop_strings needs a tokenizer it can map piece by piece, which some lack.)"""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class AtStop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            # the decoded tail of each row, as the hf sampler checks it: a stop string can span tokens,
            # and decoding whole completions every step would grow with their length
            tails = tok.batch_decode(input_ids[:, max(prompt_len, input_ids.shape[1] - 8) :], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in stop) for t in tails], device=input_ids.device)

    return StoppingCriteriaList([AtStop()] if stop else [])


def sample_answers(model, tok, task: Task, prompt: str, choices, n: int, cap: int, temperature: float) -> list:
    """n answers to one prompt, sampled in-process (one prompt: no padding)."""
    import torch

    was_training = model.training
    model.eval()
    enc = tok(prompt, return_tensors="pt").to(model.device)
    with torch.no_grad():
        out = model.generate(
            **enc,
            do_sample=True,
            temperature=temperature,
            top_p=1.0,
            max_new_tokens=cap,
            num_return_sequences=n,
            stopping_criteria=stop_criteria(tok, task.stop, enc["input_ids"].shape[1]),
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        )
    model.train(was_training)
    texts = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return [answer_of(task, t, choices) for t in texts]


@contextlib.contextmanager
def _own_rng(seed: int):
    """A seeded RNG for sampling that leaves the trainer's RNG stream (and so a resume) untouched."""
    import torch

    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def top_up_votes(model, tok, task: Task, rows: list[dict], cfg: TrainConfig, cap: int, seed: int) -> int:
    """Sample the answers each row lacks to reach train.grpo_votes (in place); how many were sampled."""
    sampled = 0
    with _own_rng(seed):
        for r in rows:
            have = list(r.get("answers") or [])
            if len(have) < cfg.grpo_votes:
                need = cfg.grpo_votes - len(have)
                r["answers"] = have + sample_answers(
                    model, tok, task, r["prompt"], r.get("choices"), need, cap, cfg.grpo_temperature
                )
                sampled += need
    return sampled


def sampled_agreement(model, tok, task: Task, probe: list[dict], cfg: TrainConfig, cap: int, seed: int) -> float:
    """Label-free agreement: mean vote share of grpo_generations sampled answers per probe prompt
    (the eval questions' text), as the round loop measures a model on its eval questions."""
    shares = []
    with _own_rng(seed):
        for p in probe:
            answers = sample_answers(
                model, tok, task, p["prompt"], p.get("choices"), cfg.grpo_generations, cap, cfg.grpo_temperature
            )
            shares.append(majority(answers)[1])
    return sum(shares) / max(1, len(shares))


def grpo_probe(eval_task: Task, examples, cfg: RunConfig) -> dict:
    """run_train's arguments for grpo's label-free stop: the first grpo_probe_questions eval
    questions as prompts (their text only, no label) and the rounds' min_gain; none with loop.stop off."""
    if not cfg.loop.stop:
        return {}
    probed = examples[: cfg.train.grpo_probe_questions or None]
    prompts = [
        {"prompt": eval_task.prompt(e.question, "fewshot_cot", cfg.sample.shots), "choices": e.choices} for e in probed
    ]
    return {"probe": prompts, "min_gain": cfg.loop.min_gain}
