"""Task registry: name -> factory. `file:PATH` builds a task from a user's JSONL/CSV."""

from __future__ import annotations

from .arith import Arith
from .base import FORMATS, Example, Exemplar, Task
from .files import GSM8K, FileTask, MultiArith

TASKS = {"arith": Arith, "gsm8k": GSM8K, "multiarith": MultiArith}


def get_task(name: str, **kwargs) -> Task:
    if name.startswith("file:"):
        return FileTask(name[5:], **kwargs)
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)} or file:PATH.jsonl")
    return TASKS[name]()


__all__ = ["FORMATS", "TASKS", "Example", "Exemplar", "FileTask", "Task", "get_task"]
