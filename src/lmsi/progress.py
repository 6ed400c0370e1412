"""A rich progress bar as a context manager yielding a tracker with `advance(n)` and `to(k)`."""

from __future__ import annotations

import contextlib
import os
import sys

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class _Tracker:
    def __init__(self, prog: Progress, task):
        self.prog, self.task = prog, task

    def advance(self, n: int = 1) -> None:
        self.prog.advance(self.task, n)

    @property
    def completed(self) -> int:
        return int(self.prog.tasks[self.task].completed)

    def to(self, k: int) -> None:
        self.prog.update(self.task, completed=k)


@contextlib.contextmanager
def bar(label: str, total: int, completed: int = 0):
    show = sys.stderr.isatty() or os.environ.get("LMSI_PROGRESS") == "1"
    columns = [
        TextColumn(f"[bold]{label:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, disable=not show, transient=False) as prog:
        yield _Tracker(prog, prog.add_task(label, total=total, completed=completed))
