"""Self-consistency vote: majority answer = pseudo-label, vote share = confidence.

Pure functions plus `run_vote`, which reads samples.jsonl and writes votes.jsonl.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from .io import read_jsonl, write_jsonl


def majority(answers: list[str | None], m: int | None = None) -> tuple[str | None, float, int]:
    """(answer, confidence, votes). None answers abstain: they never vote but do count
    in the denominator, so a question where most paths gave no answer is not confident.
    Ties go to the answer that appeared first, which is deterministic for a fixed seed.
    `m`: the denominator when only the first of m paths were drawn (early stopping): paths
    not drawn count as abstaining, so the confidence is a lower bound of the full vote's."""
    if not answers:
        return None, 0.0, 0
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None, 0.0, 0
    first = {a: i for i, a in reversed(list(enumerate(answers))) if a is not None}
    best = max(counts, key=lambda a: (counts[a], -first[a]))
    return best, counts[best] / (m or len(answers)), counts[best]


def weighted_majority(answers: list[str | None], logprobs: list[float]) -> tuple[str | None, float, int]:
    """Like `majority`, but each path votes with its probability per token, exp(mean token
    log-prob) (self-consistency's normalized weighting): (answer, weight share, paths for it)."""
    w = [math.exp(x) for x in logprobs]
    total: dict[str, float] = {}
    for a, x in zip(answers, w):
        if a is not None:
            total[a] = total.get(a, 0.0) + x
    if not total:
        return None, 0.0, 0
    best = max(total, key=lambda a: (total[a], -answers.index(a)))
    return best, total[best] / sum(w), answers.count(best)


def vote_rows(samples: list[dict], logprobs: dict | None = None) -> list[dict]:
    """One vote per question; with `logprobs` (id -> each path's mean token log-prob) a weighted one."""
    out = []
    for s in samples:
        m = s.get("m", len(s["answers"]))  # paths planned; an early-stopped question drew fewer
        if logprobs:
            answer, conf, votes = weighted_majority(s["answers"], logprobs[s["id"]])
        else:
            answer, conf, votes = majority(s["answers"], m)
        out.append(
            {
                "id": s["id"],
                "question": s["question"],
                "answer": answer,
                "confidence": round(conf, 4),
                "votes": votes,
                "paths": len(s["answers"]),
                "m": m,
                "abstained": sum(a is None for a in s["answers"]),
                "distinct": len({a for a in s["answers"] if a is not None}),
                "gold": s.get("gold"),  # diagnostics only; never read by build/train
            }
        )
    return out


def run_vote(round_dir: Path, logprobs: dict | None = None) -> list[dict]:
    rows = vote_rows(read_jsonl(round_dir / "samples.jsonl"), logprobs)
    write_jsonl(round_dir / "votes.jsonl", rows)
    return rows
