"""Where benchmark files are found, and small readers that name file:line on bad input."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from ..io import InputError, read_jsonl


def data_root() -> Path:
    """Where benchmark copies live: $LMSI_DATA, else ../shared/data from the project root."""
    env = os.environ.get("LMSI_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def data_file(rel: str) -> Path:
    path = data_root() / rel
    if not path.is_file():
        raise InputError(f"{path}: dataset file not found (set LMSI_DATA to the folder holding the benchmarks)")
    return path


def read_records(path: Path) -> list[tuple[int, dict]]:
    """(line, record) pairs from .jsonl, a .json array (or JSON Lines named .json), .csv or .tsv."""
    path = Path(path)
    if path.suffix in (".csv", ".tsv"):
        try:
            with open(path, newline="", encoding="utf-8") as f:
                sep = "\t" if path.suffix == ".tsv" else ","
                quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
                return [(i + 2, r) for i, r in enumerate(csv.DictReader(f, delimiter=sep, quoting=quoting))]
        except UnicodeDecodeError as e:
            raise InputError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    if path.suffix == ".json":
        text = path.read_bytes()
        if text.lstrip()[:1] == b"[":
            try:
                rows = json.loads(text.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise InputError(f"{path}: not a valid UTF-8 JSON array ({e})") from None
            bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
            if bad is not None:
                raise InputError(f"{path}: item {bad} of the array is not an object")
            return [(i, r) for i, r in enumerate(rows)]
    return [(i, r) for i, r in _numbered_jsonl(path)]


def _numbered_jsonl(path: Path):
    rows = read_jsonl(path)
    # read_jsonl skips blank lines; recover true line numbers for error messages
    lines = [n for n, line in enumerate(path.read_bytes().split(b"\n"), 1) if line.strip()]
    return zip(lines, rows)


def take(rows: list, limit: int | None) -> list:
    return rows[:limit] if limit else rows
