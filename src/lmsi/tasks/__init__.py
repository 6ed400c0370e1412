"""Task registry: name -> factory. `file:PATH` and `hf:ID` build a task from any dataset."""

from __future__ import annotations

import functools

from ..io import InputError
from .arith import Arith
from .base import FORMATS, Example, Exemplar, Task
from .choice import ARCChallenge, CommonsenseQA, OpenBookQA
from .generic import ANSWER_TYPES, FileTask
from .math import GSM8K, AQuA, MultiArith
from .reading import ANLI, DROP, StrategyQA

TASKS = {
    "arith": Arith,
    "gsm8k": GSM8K,
    "multiarith": MultiArith,
    "aqua": AQuA,
    "arc_challenge": ARCChallenge,
    "openbookqa": OpenBookQA,
    "commonsenseqa": CommonsenseQA,
    "strategyqa": StrategyQA,
    "anli_r1": functools.partial(ANLI, 1),
    "anli_r2": functools.partial(ANLI, 2),
    "anli_r3": functools.partial(ANLI, 3),
    "drop": DROP,
}


def get_task(name: str, **kwargs) -> Task:
    """A registered task, or `file:PATH` / `hf:ID[:config]` with field mapping kwargs."""
    if name.startswith(("file:", "hf:")):
        return FileTask(name, **kwargs)
    if name not in TASKS:
        raise InputError(f"unknown task {name!r}; choose one of {sorted(TASKS)}, file:PATH or hf:DATASET_ID")
    return TASKS[name]()


FIELD_KEYS = ("question_field", "answer_field", "choices_field", "answer_type")


def task_from_data(name: str, data: dict) -> Task:
    """The task a config's `data` section names; its field mapping applies to file:/hf: tasks only."""
    if name.startswith(("file:", "hf:")):
        return get_task(name, **{k: data[k] for k in FIELD_KEYS if k in data})
    return get_task(name)


__all__ = ["ANSWER_TYPES", "FORMATS", "TASKS", "Example", "Exemplar", "FileTask", "Task", "get_task", "task_from_data"]
