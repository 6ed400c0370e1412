"""Numeric tasks read from files at run time: GSM8K, MultiArith, and any user JSONL/CSV."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from ..io import InputError, read_jsonl
from .base import MATH_EXEMPLARS, Example, Task
from .extract import normalize_number


def data_root() -> Path:
    """Where benchmark copies live: $LMSI_DATA, else ../shared/data from the project root."""
    env = os.environ.get("LMSI_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _require(path: Path) -> Path:
    if not path.is_file():
        raise InputError(f"{path}: dataset file not found (set LMSI_DATA or pass a path)")
    return path


class GSM8K(Task):
    name, version, exemplars = "gsm8k", 1, MATH_EXEMPLARS
    files = {"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"}

    def load(self, split, limit=None):
        if split not in self.files:
            raise ValueError(f"gsm8k has splits {sorted(self.files)}, not {split!r}")
        path = _require(data_root() / self.files[split])
        out = []
        for i, r in enumerate(read_jsonl(path)):
            gold = normalize_number(r["answer"].split("####")[-1])
            out.append(Example(f"gsm8k-{split}-{i}", r["question"].strip(), gold))
        return out[:limit] if limit else out


class MultiArith(Task):
    """600 problems with no official split: even indices are 'train', odd are 'test'."""

    name, version, exemplars = "multiarith", 1, MATH_EXEMPLARS

    def load(self, split, limit=None):
        if split not in ("train", "test", "all"):
            raise ValueError(f"multiarith has splits ['all', 'test', 'train'], not {split!r}")
        rows = json.loads(_require(data_root() / "multiarith/MultiArith.json").read_text())
        out = [
            Example(f"multiarith-{r['iIndex']}", r["sQuestion"].strip(), normalize_number(str(r["lSolutions"][0])))
            for i, r in enumerate(rows)
            if split == "all" or (i % 2 == 0) == (split == "train")
        ]
        return out[:limit] if limit else out


class FileTask(Task):
    """Any JSONL or CSV file of numeric questions: `question_field`, optional `answer_field`."""

    name, version, exemplars = "file", 1, MATH_EXEMPLARS

    def __init__(self, path: str, question_field: str = "question", answer_field: str = "answer"):
        self.path, self.qf, self.af = Path(path), question_field, answer_field

    def load(self, split=None, limit=None):
        path = _require(self.path)
        if path.suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as f:
                rows = [(i + 2, r) for i, r in enumerate(csv.DictReader(f))]
        else:
            rows = list(enumerate(read_jsonl(path), 1))  # approximate line numbers for jsonl
        out, seen = [], set()
        for line, r in rows:
            q = r.get(self.qf)
            if not isinstance(q, str):
                raise InputError(f"{path}:{line}: field {self.qf!r} missing or not a string (fields: {sorted(r)})")
            if not q.strip():
                raise InputError(f"{path}:{line}: empty question")
            rid = str(r.get("id", f"{path.stem}-{line}"))
            if rid in seen:
                raise InputError(f"{path}:{line}: duplicate id {rid!r}")
            seen.add(rid)
            gold = r.get(self.af)
            out.append(Example(rid, q.strip(), None if gold is None else normalize_number(str(gold))))
        if not out:
            raise InputError(f"{path}: no questions found")
        return out[:limit] if limit else out
