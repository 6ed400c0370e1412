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
    by_id = {s["id"]: s for s in samples}
    kept = []  # (vote, question, reasoning) for each distinct majority path of a confident question
    for v in votes:
        if v["answer"] is None or v["confidence"] < cfg.threshold:
            continue
        s = by_id[v["id"]]
        paths = [c for c, a in zip(s["completions"], s["answers"]) if a == v["answer"]]
        # distinct reasoning only: duplicated paths teach nothing new
        for reasoning in list(dict.fromkeys(task.reasoning_of(c) for c in paths))[: cfg.max_paths]:
            kept.append((v, s["question"], reasoning))
    random.Random(seed).shuffle(kept)
    if cfg.max_rows:
        kept = kept[: cfg.max_rows]
    # formats are assigned after the cap so the mix stays balanced in the rows actually trained on
    formats = _weighted_cycle({f: cfg.formats.get(f, 0.0) for f in FORMATS})
    rows = []
    for v, question, reasoning in kept:
        fmt = next(formats)
        rows.append({
            "id": v["id"], "format": fmt, "confidence": v["confidence"],
            "prompt": task.prompt(question, fmt, shots),
            "completion": task.target(reasoning, v["answer"], fmt),
        })
    return rows


def run_build(task: Task, round_dir: Path, cfg: BuildConfig, shots: int, seed: int) -> list[dict]:
    rows = build_rows(task, read_jsonl(round_dir / "samples.jsonl"), read_jsonl(round_dir / "votes.jsonl"), cfg, shots, seed)
    write_jsonl(round_dir / "train.jsonl", rows)
    return rows
