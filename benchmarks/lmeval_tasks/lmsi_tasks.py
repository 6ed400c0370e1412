"""Data loaders and few-shot exemplars for the lm-eval task YAMLs next to this file.

The benchmark files are read from a folder given at run time
(`lm_eval ... --metadata '{"data_dir": "PATH"}'`, default: ../shared/data from the repository
root), never from the hub. The exemplars are lmsi's own (lmsi.tasks), so both harnesses show the
model the same few-shot text; the prompt itself is built by lm-eval from the YAML templates.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from lmsi.tasks import get_task
from lmsi.tasks.base import with_choices

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SHOTS = 3  # lmsi's sample.shots default; the YAMLs' num_fewshot says the same


def _json(data_dir, rel: str) -> datasets.DatasetDict:
    path = Path(data_dir or DEFAULT_DATA) / rel
    if not path.is_file():
        raise FileNotFoundError(f'{path}: not found (pass --metadata \'{{"data_dir": "DIR"}}\')')
    return datasets.load_dataset("json", data_files={"test": str(path)})


def load_gsm8k(data_dir=None, **_):
    return _json(data_dir, "gsm8k/test.jsonl")


def _arc_doc(r: dict) -> dict:
    labels = [c["label"] for c in r["question"]["choices"]]
    options = [c["text"].strip() for c in r["question"]["choices"]]
    gold = labels.index(r["answerKey"]) if r["answerKey"] in labels else -1
    return {
        "question": with_choices(r["question"]["stem"], options),
        "choices": options,
        "gold": f"({chr(65 + gold)})" if gold >= 0 else "",
    }


def load_arc_challenge(data_dir=None, **_):
    raw = _json(data_dir, "arc_challenge/ARC-Challenge-Test.reconstructed.jsonl")
    return raw.map(_arc_doc, remove_columns=["question", "answerKey"])


def _exemplars(task: str) -> list[dict]:
    t = get_task(task)
    return [{"question": e.question, "target": f"{e.reasoning} The answer is {t.show(e.answer)}."} for e in t.exemplars]


def gsm8k_exemplars() -> list[dict]:
    return _exemplars("gsm8k")


def arc_exemplars() -> list[dict]:
    return _exemplars("arc_challenge")
