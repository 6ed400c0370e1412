"""Build the self-training set: confident questions, majority paths, four mixed formats.

Gold answers are never read here: only the vote's pseudo-label.
"""

from __future__ import annotations

import random
from pathlib import Path

from .config import BuildConfig
from .io import read_jsonl, write_jsonl
from .tasks import FORMATS, Task


def _weighted_cycle(weights: dict[str, float]):
    """Smooth weighted round-robin: a balanced, deterministic format mix even for few rows
    (random draws left whole formats out of a 16-row set)."""
    credit = {f: 0.0 for f in weights if weights[f] > 0}
    total = sum(weights[f] for f in credit)
    while True:
        for f in credit:
            credit[f] += weights[f]
        best = max(credit, key=credit.get)
        credit[best] -= total
        yield best


def build_rows(task: Task, samples: list[dict], votes: list[dict], cfg: BuildConfig, shots: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    by_id = {s["id"]: s for s in samples}
    weights = {f: cfg.formats.get(f, 0.0) for f in FORMATS}
    formats = _weighted_cycle(weights)
    rows = []
    for v in votes:
        if v["answer"] is None or v["confidence"] < cfg.threshold:
            continue
        s = by_id[v["id"]]
        paths = [c for c, a in zip(s["completions"], s["answers"]) if a == v["answer"]]
        # distinct reasoning first: duplicated paths teach nothing new
        uniq = list(dict.fromkeys(task.reasoning_of(c) for c in paths))[: cfg.max_paths]
        for reasoning in uniq:
            fmt = next(formats)
            rows.append({
                "id": v["id"], "format": fmt, "confidence": v["confidence"],
                "prompt": task.prompt(s["question"], fmt, shots),
                "completion": task.target(reasoning, v["answer"], fmt),
            })
    rng.shuffle(rows)
    if cfg.max_rows:
        rows = rows[: cfg.max_rows]
    return rows


def run_build(task: Task, round_dir: Path, cfg: BuildConfig, shots: int, seed: int) -> list[dict]:
    rows = build_rows(task, read_jsonl(round_dir / "samples.jsonl"), read_jsonl(round_dir / "votes.jsonl"), cfg, shots, seed)
    write_jsonl(round_dir / "train.jsonl", rows)
    return rows
