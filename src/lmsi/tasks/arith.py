"""Synthetic multi-step arithmetic word problems: the project's own default task.

A seeded generator composes 1-3 operation steps over varied templates, so gold answers
are exact and any number of fresh questions exists. Splits use disjoint seed streams, and
`load` drops any test question that near-duplicates a train question.
"""

from __future__ import annotations

import random

from .base import Example, Task
from .exemplars import MATH_EXEMPLARS
from .overlap import find_overlap

NAMES = [
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kira",
    "Luis",
    "Maya",
    "Noor",
    "Owen",
    "Priya",
]
ITEMS = [
    ("apples", "bag"),
    ("cards", "pack"),
    ("pencils", "box"),
    ("eggs", "carton"),
    ("stickers", "sheet"),
    ("cookies", "tray"),
    ("bottles", "case"),
    ("beads", "jar"),
]
SPLIT_SEEDS = {"train": 1_000, "test": 2_000, "dev": 3_000}
SPLIT_SIZES = {"train": 2_000, "test": 500, "dev": 500}


def _problem(rng: random.Random) -> tuple[str, int]:
    name, other = rng.sample(NAMES, 2)
    item, unit = rng.choice(ITEMS)
    steps = rng.choice([1, 2, 2, 3, 3])
    packs, per = rng.randint(2, 9), rng.randint(3, 12)
    total = packs * per
    units = unit + ("es" if unit.endswith("x") else "s")
    text = f"{name} buys {packs} {units} of {item} with {per} {item} in each {unit}."
    for _ in range(steps - 1):
        op = rng.choice(["give", "find", "eat", "double"])
        if op == "give" and total > 2:
            k = rng.randint(1, total - 1)
            text += f" {name} gives {k} {item} to {other}."
            total -= k
        elif op == "eat" and total > 2:
            k = rng.randint(1, min(9, total - 1))
            text += f" {k} of the {item} get lost."
            total -= k
        elif op == "double":
            text += f" Then {other} gives {name} as many {item} as {name} already has."
            total *= 2
        else:
            k = rng.randint(2, 30)
            text += f" {name} finds {k} more {item}."
            total += k
    if rng.random() < 0.3 and total % 2 == 0:
        text += f" {name} shares the {item} equally with {other}. How many {item} does {name} keep?"
        total //= 2
    else:
        text += f" How many {item} does {name} have now?"
    return text, total


class Arith(Task):
    name = "arith"
    version = 2
    exemplars = MATH_EXEMPLARS

    split_names = tuple(SPLIT_SIZES)

    def splits(self) -> dict[str, int]:
        return {s: len(self.load(s)) for s in self.split_names}

    def _generate(self, split: str) -> list[Example]:
        rng = random.Random(SPLIT_SEEDS[split])
        return [Example(f"arith-{split}-{i}", *map(str, _problem(rng))) for i in range(SPLIT_SIZES[split])]

    def load(self, split: str, limit: int | None = None) -> list[Example]:
        self.check_split(split)
        rows = self._generate(split)
        if split != "train":  # drop exact and near-duplicates of train (same numbers, another name)
            dup = {f["eval_id"] for f in find_overlap(self._generate("train"), rows)}
            rows = [e for e in rows if e.id not in dup]
        return rows[:limit] if limit else rows
