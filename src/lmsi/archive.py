"""A text-free copy of a finished run directory (`lmsi archive`), small enough to commit.

Run directories hold dataset text (questions, prompts, gold answers) and weights, neither of which
may go into git, and they live only on the machine that ran them. The archive keeps what `lmsi
report`, `lmsi results` and `lmsi compare` read: configs, manifests, recorded commands, summaries
and per-item verdicts. Text fields are dropped, and a vote's gold answer is replaced by whether the
pseudo-label matched it, so the report's pseudo-label accuracy survives without the label.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from .io import InputError, atomic_write_text, read_jsonl, write_json
from .rundir import CONFIG, RunDir, task_for

TEXT_KEYS = {
    "prompt",
    "paths",
    "question",
    "gold",
    "completion",
    "completions",
    "text",
    "messages",
    "reasoning",
    "rationale",
    "chosen",
    "rejected",
    "context",
    "choices",
    "exemplars",
    "response",
}
MAX_STR = 32  # a longer string in a per-item row may quote the dataset: stored as a digest
SKIP_DIRS = {"adapter", "model", "checkpoints", "tracking"}  # weights; tracker stores (local paths inside)
KEEP = {".json", ".jsonl", ".yaml", ".md", ".png", ".txt"}


def strip_text(obj):
    """obj without TEXT_KEYS; other long strings become short digests, which keep what the
    reports need of them (equal answers stay equal, ids still pair items)."""
    if isinstance(obj, dict):
        return {k: strip_text(v) for k, v in obj.items() if k not in TEXT_KEYS}
    if isinstance(obj, list):
        return [strip_text(v) for v in obj]
    if isinstance(obj, str) and len(obj) > MAX_STR:
        return "sha1:" + hashlib.sha1(obj.encode()).hexdigest()[:16]
    return obj


def _vote_row(row: dict, task) -> dict:
    if row.get("gold") is not None and "label_correct" not in row:
        row = {**row, "label_correct": row["answer"] is not None and bool(task.is_correct(row["answer"], row["gold"]))}
    return strip_text(row)


def check_archive_dest(src: Path, dst: Path) -> None:
    """Refuse an archive folder inside the run directory or one that is a file (lmsi run --archive
    asks before its first stage, not hours later)."""
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if dst == src or src in dst.parents:
        raise InputError(f"{dst}: the archive must lie outside the run directory")
    if dst.exists() and not dst.is_dir():
        raise InputError(f"{dst}: exists and is not a folder")


def archive_run(src: Path, dst: Path) -> list[Path]:
    """Copy run `src` to `dst` without text or weights; returns the files written."""
    src, dst = Path(src), Path(dst)
    if not any((src / f).exists() for f in ("manifest.json", "signal.json", "eval/summary.json")):
        raise InputError(f"{src}: not an lmsi run, signal or eval directory (no manifest.json)")
    check_archive_dest(src, dst)
    run = RunDir(src)
    task = run.task if run.has_config() else task_for({})
    written = []
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = f.relative_to(src)
        if set(rel.parts[:-1]) & SKIP_DIRS or f.suffix not in KEEP or f.name.endswith(".partial.jsonl"):
            continue
        out = dst / rel
        if f.suffix == ".jsonl":
            rows = read_jsonl(f, tolerate_torn_tail=True)
            conv = (lambda r: _vote_row(r, task)) if f.name in ("votes.jsonl", "exemplar_votes.jsonl") else strip_text
            atomic_write_text(out, "".join(json.dumps(conv(r), ensure_ascii=False) + "\n" for r in rows))
        elif f.name == "exemplars.json":  # self-written exemplars quote unlabeled questions
            write_json(out, strip_text(json.loads(f.read_text())))
        elif f.suffix == ".json":  # configs, manifests, summaries: numbers and names lmsi wrote
            write_json(out, json.loads(f.read_text()))
        elif f.name.startswith("report") or f.name in ("commands.txt", CONFIG, "signal.md"):
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, out)  # written by lmsi from numbers and commands, not from dataset text
        else:
            continue
        written.append(out)
    return written
