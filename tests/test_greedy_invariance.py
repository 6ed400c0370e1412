"""Greedy text must not depend on which other rows share its batch.

The same greedy prompts decoded alone, with other prompts of other lengths, or riding along
with sampled self-consistency paths must give the same text; otherwise a before/after
comparison moves when only a config (modes, sc_m, batch_rows, a resumed chunk) changed the
batch shape. In fp32 such differences are in the last bits of the logits and flip a greedy
token only now and then, so the models here are made knife-edged to show any of them in the
text: tokens get twins whose embeddings (input and output) are theirs times the next float32
above 1 (1 + 1e-7 rounds to it), so the argmax between twins is decided by the last bits.
"""

import json

import pytest
import torch

from lmsi.backends import SamplingParams
from lmsi.backends.hf import HFSampler
from lmsi.config import EvalConfig
from lmsi.evaluate import run_eval
from lmsi.tasks import get_task
from lmsi.tasks.data import data_root


def _twin(model, pairs):
    """Token b becomes the knife-edge twin of token a, for each (a, b)."""
    a, b = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
    with torch.no_grad():
        for emb in {model.get_input_embeddings().weight, model.get_output_embeddings().weight}:
            emb[b] = emb[a] * (1 + 1e-7)
    return model


def _knife_edged(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return _twin(model, [(a, a + 1) for a in range(2, len(tok) - 1, 2)]), tok


def _texts(rows):
    return {r["id"]: r["paths"] for r in rows}


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_greedy_alone_equals_greedy_with_sc(tiny_model_dir, tmp_path):
    """run_eval with [greedy_cot] in big chunks vs [greedy_cot, sc] in chunks of two prompts."""
    model, tok = _knife_edged(tiny_model_dir)
    task = get_task("arith")
    examples = task.load("test", 8)
    alone = EvalConfig(modes=["greedy_cot"])
    with_sc = EvalConfig(modes=["greedy_cot", "sc"], sc_m=3)
    run_eval(task, HFSampler(model, tok, batch_rows=64), examples, tmp_path / "a", alone, 2, 24, 0, batch_rows=64)
    run_eval(task, HFSampler(model, tok, batch_rows=8), examples, tmp_path / "b", with_sc, 2, 24, 0, batch_rows=8)
    a = _texts(_jsonl(tmp_path / "a/greedy_cot.jsonl"))
    b = _texts(_jsonl(tmp_path / "b/greedy_cot.jsonl"))
    assert len({p[0] for p in a.values()}) > 1  # the prompts do not all decode to one text
    differ = [i for i in a if a[i] != b[i]]
    assert not differ, f"{len(differ)} of {len(a)} greedy paths differ, e.g. {a[differ[0]]!r} vs {b[differ[0]]!r}"


def test_sampler_greedy_ignores_its_batch_mates(tiny_model_dir):
    """Each prompt alone, all together, and together with other prompts and sampled paths."""
    model, tok = _knife_edged(tiny_model_dir)
    task = get_task("arith")
    prompts = [task.prompt(e.question, "fewshot_cot", 2) for e in task.load("test", 5)]
    others = [
        task.prompt("Ada has 7 pens and buys 9 more pens at the shop. How many?", "fewshot_cot", 1),
        "Q: 1+1?\nA:",
    ]
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=24, stop=task.stop)
    sampled = SamplingParams(n=4, temperature=0.7, max_new_tokens=24, stop=task.stop, seed=5, greedy_first=True)
    alone = [HFSampler(model, tok).generate([p], greedy)[0][0] for p in prompts]
    together = [o[0] for o in HFSampler(model, tok, batch_rows=64).generate(prompts, greedy)]
    mixed = HFSampler(model, tok, batch_rows=16).generate([others[0], *prompts[::-1], others[1]], sampled)
    riding = [o[0] for o in mixed[1:-1][::-1]]
    assert together == alone
    assert riding == alone


@pytest.mark.slow
@pytest.mark.skipif(not (data_root() / "multiarith").is_dir(), reason=f"benchmark copies not at {data_root()}")
def test_embedded_model_greedy_ignores_its_batch_mates():
    """The real model (fp32), its prompt tokens twinned with rare tokens: MultiArith prompts
    greedy in one batch vs riding along with sampled paths and a shorter prompt."""
    from lmsi.models import load_model

    model, tok = load_model("embedded:qwen2.5-coder-0.5b", "float32")
    task = get_task("multiarith")
    prompts = [task.prompt(e.question, "fewshot_cot", 3) for e in task.load("test", 4)]
    common = sorted(set(tok(prompts[0], add_special_tokens=False).input_ids))
    _twin(model, [(a, 140_000 + i) for i, a in enumerate(common)])  # 140000+: rare multi-byte tokens
    other = task.prompt("A farmer had 120 apples and sold 45 of them. How many are left?", "fewshot_cot", 1)
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=48, stop=task.stop)
    sampled = SamplingParams(n=2, temperature=0.7, max_new_tokens=48, stop=task.stop, seed=1, greedy_first=True)
    s = HFSampler(model, tok, batch_rows=512)
    alone = [o[0] for o in s.generate(prompts, greedy)]
    riding = [o[0] for o in s.generate([other, *prompts[::-1]], sampled)[1:][::-1]]
    assert any(tok.decode([140_000 + i]) in t for t in alone for i in range(len(common)))  # twins are chosen
    differ = [i for i, (a, b) in enumerate(zip(alone, riding)) if a != b]
    assert not differ, f"items {differ} differ, e.g. {alone[differ[0]]!r} vs {riding[differ[0]]!r}"
