"""Replay exact early stopping over the recorded full-m paths of the committed run archives.

    PYTHONPATH=src .venv/bin/python scripts/earlystop_replay.py docs/runs --threshold 0.5 --max-paths 4

For every distinct recorded sample round (round_*/samples.jsonl; rounds copied between runs
counted once) and sc evaluation (sc.jsonl) with m = 8 paths, runs the rule (lmsi.earlystop)
over each question's answers in draw order, checks that the stopped prefix gives the full vote's
majority answer, kept questions and sc verdicts, and prints paths drawn / (m x questions) per wave
size. Archives hold no path text, so for the build stage's distinct-reasoning condition two
identical paths are recognised by equal mean token log-probs (path_logprobs.jsonl, round 1 only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from lmsi.earlystop import passes, stop_point
from lmsi.io import read_jsonl
from lmsi.vote import majority

WAVES = (1, 2, 4)


def _distinct(rows: list[dict]) -> list[dict]:
    seen, out = set(), []
    for r in rows:
        h = hashlib.sha1(json.dumps(r["rows"]).encode()).hexdigest()
        if h not in seen:
            seen.add(h)
            out.append(r)
    return out


def _load(root: Path, m: int) -> tuple[list[dict], list[dict]]:
    sample, sc = [], []
    for f in sorted(root.glob("*/round_*/samples.jsonl")):
        rows = read_jsonl(f)
        if rows and all(len(r["answers"]) == m for r in rows):
            lp = f.with_name("path_logprobs.jsonl")
            keys = {r["id"]: [round(x, 6) for x in r["logprobs"]] for r in read_jsonl(lp)} if lp.exists() else None
            sample.append({"name": str(f.relative_to(root)), "rows": rows, "keys": keys})
    for f in sorted(root.glob("*/**/sc.jsonl")):
        rows = read_jsonl(f)
        if rows and all(len(r["answers"]) == m for r in rows):
            sc.append({"name": str(f.relative_to(root)), "rows": rows})
    return _distinct(sample), _distinct(sc)


def replay(root: Path, m: int, threshold: float, max_paths: int) -> str:
    sample, sc = _load(root, m)
    lines = [
        f"m = {m}, build.threshold = {threshold}, build.max_paths = {max_paths}: paths drawn / (m x questions)",
        "",
        "| recorded | files | questions | " + " | ".join(f"wave {w}" for w in WAVES) + " |",
        "|---|---|---|" + "---|" * len(WAVES),
    ]

    def row(label, sets, draw):
        n = sum(len(s["rows"]) for s in sets)
        cells = [sum(draw(s, r, w) for s in sets for r in s["rows"]) / (m * n) for w in WAVES]
        lines.append(f"| {label} | {len(sets)} | {n} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")

    def check_sample(a, d):
        full, part = majority(a), majority(a[:d], m)
        assert full[0] == part[0] and (full[0] is not None and passes(full[2], m, threshold)) == (
            part[0] is not None and passes(part[2], m, threshold)
        )
        return d

    def answers_only(s, r, w):
        return check_sample(r["answers"], stop_point(r["answers"], w, threshold))

    def with_distinct(s, r, w):
        return check_sample(r["answers"], stop_point(r["answers"], w, threshold, s["keys"][r["id"]], max_paths))

    def sc_only(s, r, w):
        d = stop_point(r["answers"], w)
        assert majority(r["answers"][:d])[0] == majority(r["answers"])[0] == r["prediction"]
        return d

    row("sample: majority answer + threshold", sample, answers_only)
    row("sample: the same, round 1 only", [s for s in sample if s["keys"]], answers_only)
    row(
        "sample: + max_paths distinct majority paths (round 1, log-prob proxy)",
        [s for s in sample if s["keys"]],
        with_distinct,
    )
    row("sc eval: majority answer", sc, sc_only)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--max-paths", type=int, default=4)
    a = ap.parse_args()
    print(replay(a.root, a.m, a.threshold, a.max_paths))


if __name__ == "__main__":
    main()
