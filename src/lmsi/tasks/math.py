"""Math word problems: GSM8K, MultiArith (numbers) and AQuA (five lettered options)."""

from __future__ import annotations

import json
import re

from .base import Example, Task, with_choices
from .data import data_file, read_records, take
from .exemplars import AQUA_EXEMPLARS, MATH_EXEMPLARS
from .extract import normalize_number


class GSM8K(Task):
    name, version, exemplars = "gsm8k", 1, MATH_EXEMPLARS
    files = {"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"}

    def load(self, split, limit=None):
        self.check_split(split)
        return take(
            [
                Example(f"gsm8k-{split}-{i}", r["question"].strip(), normalize_number(r["answer"].split("####")[-1]))
                for i, (_, r) in enumerate(read_records(data_file(self.files[split])))
            ],
            limit,
        )


class MultiArith(Task):
    """600 problems with no official split: even indices are 'train', odd are 'test'."""

    name, version, exemplars = "multiarith", 1, MATH_EXEMPLARS
    split_names = ("train", "test", "all")

    def load(self, split, limit=None):
        self.check_split(split)
        rows = json.loads(data_file("multiarith/MultiArith.json").read_text())
        return take(
            [
                Example(f"multiarith-{r['iIndex']}", r["sQuestion"].strip(), normalize_number(str(r["lSolutions"][0])))
                for i, r in enumerate(rows)
                if split == "all" or (i % 2 == 0) == (split == "train")
            ],
            limit,
        )


class AQuA(Task):
    """AQuA-RAT dev (unlabeled pool) and test; options arrive as 'A)32400'."""

    name, version, exemplars, answer_type = "aqua", 1, AQUA_EXEMPLARS, "choice"
    split_names = ("dev", "test")
    unlabeled_split, eval_split = "dev", "test"

    def load(self, split, limit=None):
        self.check_split(split)
        out = []
        for i, (_, r) in enumerate(read_records(data_file(f"aqua/{split}.json"))):
            options = tuple(re.sub(r"^\s*[A-E]\s*\)\s*", "", o) for o in r["options"])
            out.append(
                Example(f"aqua-{split}-{i}", with_choices(r["question"], options), r["correct"].strip(), options)
            )
        return take(out, limit)
