"""SFT must learn from exactly the tokens it learned from before it moved onto TRL's SFTTrainer:
per training row (built by the real build stage, every format), the input ids, attention mask
and loss labels the trainer feeds the model equal an independent, plain tokenisation: prompt
tokens masked (-100), completion tokens and one EOS learned, an over-long row cut from the left
(the answer at its end is kept)."""

from __future__ import annotations

import pytest

from lmsi.build import build_rows
from lmsi.config import BuildConfig, load_config
from lmsi.tasks import FORMATS, get_task


class _Captured(Exception):
    pass


def _reference(tok, row: dict, max_length: int) -> tuple[list[int], list[int]]:
    """The tokenisation SFT used before TRL: prompt and completion tokenised apart (no special
    tokens), EOS appended to the completion, the last max_length tokens kept."""
    p = tok(row["prompt"], add_special_tokens=False).input_ids
    c = tok(row["completion"], add_special_tokens=False).input_ids + [tok.eos_token_id]
    return (p + c)[-max_length:], ([-100] * len(p) + c)[-max_length:]


def _rows(task, questions: list[str], answers: list[str], shots: int) -> list[dict]:
    """Training rows from the build stage: each question voted unanimously for its answer."""
    samples, votes = [], []
    for i, (q, a) in enumerate(zip(questions, answers)):
        said = task.show(a)
        paths = [
            f" Step {i} leads to {a}.\nso {said} The answer is {said}.",
            f" Other route: {a}. The answer is {said}.",
        ]
        samples.append({"id": f"q{i}", "question": q, "completions": paths, "answers": [a, a]})
        votes.append({"id": f"q{i}", "answer": a, "confidence": 0.5 + i / 20})
    cfg = BuildConfig(max_paths=2, max_rows=0, formats={f: 1.0 for f in FORMATS})
    return build_rows(task, samples, votes, cfg, shots=shots, seed=0)


def _real_rows() -> list[dict]:
    arith = get_task("arith")
    qs = arith.load("train", 4)
    rows = _rows(arith, [q.question for q in qs], [q.answer for q in qs], shots=2)
    csqa = get_task("commonsenseqa")
    cs = csqa.load("train", 2)
    rows += _rows(csqa, [q.question for q in cs], ["B", "D"], shots=2)
    math = get_task("file:unused.jsonl", answer_type="math")
    rows += _rows(math, ["What is 1/2 + 1/4?", "Simplify sqrt(8)."], ["\\frac{3}{4}", "2\\sqrt{2}"], shots=0)
    return rows


def _fed_to_the_model(monkeypatch, model_dir, tmp_path, rows, overrides) -> list[tuple[list, list, list]]:
    """Run the SFT stage up to its first step; return every batch its data loader yields (one
    epoch), as (input_ids, labels, attention_mask) per row."""
    from transformers import Trainer

    from lmsi.io import write_jsonl
    from lmsi.models import load_model
    from lmsi.train import run_train

    seen = []

    def capture(self, *a, **kw):
        seen.append(type(self))
        for batch in self.get_train_dataloader():
            for i in range(batch["input_ids"].shape[0]):
                seen.append(tuple(batch[k][i].tolist() for k in ("input_ids", "labels", "attention_mask")))
        raise _Captured

    monkeypatch.setattr(Trainer, "train", capture)
    write_jsonl(tmp_path / "train.jsonl", rows)
    cfg = load_config(overrides=["train.epochs=1", *overrides]).train
    with pytest.raises(_Captured):
        run_train(*load_model(str(model_dir), "float32", False), tmp_path, cfg, seed=0)
    return seen


@pytest.mark.parametrize("weighting", ["none", "confidence"])
def test_sft_feeds_the_model_the_same_tokens_as_a_plain_tokenisation(tiny_model_dir, tmp_path, monkeypatch, weighting):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = _real_rows()
    assert {r["format"] for r in rows} == set(FORMATS)
    lengths = sorted(len(_reference(tok, r, 10**6)[0]) for r in rows)
    max_length = lengths[len(lengths) // 2]  # half the rows are cut, half are not
    assert lengths[0] < max_length < lengths[-1]
    overrides = [f"train.max_length={max_length}", f"train.weighting={weighting}"]
    seen = _fed_to_the_model(monkeypatch, tiny_model_dir, tmp_path, rows, overrides)[1:]

    want = []
    for r in rows:
        ids, labels = _reference(tok, r, max_length)
        want.append((ids, labels, [1] * len(ids)))
    assert sorted(seen) == sorted(want)
    cut = [w for w in want if len(w[0]) == max_length]
    assert cut and all(w[1][-1] == tok.eos_token_id and w[1][0] == -100 for w in cut)


def test_sft_runs_on_trl_sft_trainer(tiny_model_dir, tmp_path, monkeypatch):
    from trl import SFTTrainer

    rows = _real_rows()[:2]
    for weighting in ("none", "confidence"):
        rd = tmp_path / weighting
        trainer_cls = _fed_to_the_model(monkeypatch, tiny_model_dir, rd, rows, [f"train.weighting={weighting}"])[0]
        assert issubclass(trainer_cls, SFTTrainer), trainer_cls
