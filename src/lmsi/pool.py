"""The questions a run works on: each round's unlabeled questions (the task's pool, or the model's
own), exemplar candidates, and the labeled eval examples, after the contamination guard."""

from __future__ import annotations

import functools
from pathlib import Path

from .config import RunConfig
from .contamination import guard
from .io import InputError, read_jsonl
from .tasks import Example, Task


class DataPool:
    def __init__(self, cfg: RunConfig, task: Task, eval_task: Task, run_dir: Path, log=print):
        self.cfg, self.task, self.eval_task, self.run_dir, self.log = cfg, task, eval_task, Path(run_dir), log

    @functools.cached_property
    def held_out(self) -> list[Example]:
        """The labeled eval examples ([] for a file task with no eval.task: nothing to score)."""
        e = self.cfg.eval
        if not e.task and self.cfg.data.task.startswith("file:"):
            return []
        return self.eval_task.load(self.eval_task.resolve_split(e.split, "eval"), e.limit or None)

    def _size(self) -> int | None:
        """Unlabeled questions to load: every round's share, plus exemplar candidates."""
        c = self.cfg
        if c.selfgen.questions:
            need = c.selfgen.seed_questions
        elif not c.data.limit:
            return None
        else:
            need = c.data.limit * (c.loop.rounds if c.loop.questions == "fresh" else 1)
        return need + (c.selfgen.exemplar_pool if c.selfgen.exemplars else 0)

    @functools.cached_property
    def _guarded(self) -> list[Example]:
        """The unlabeled pool after the contamination guard (which writes contamination.json)."""
        d = self.cfg.data
        split = self.task.resolve_split(d.split, "unlabeled")
        pool = self.task.load(split, self._size())
        if not pool:
            raise InputError(f"task {d.task!r} split {split!r} has no questions")
        evals = self.held_out
        eval_split = self.eval_task.resolve_split(self.cfg.eval.split, "eval") if evals else None
        return guard(pool, evals, self.task, split, self.eval_task, eval_split, d, self.run_dir, self.log)

    @property
    def pool(self) -> list[Example]:
        """Unlabeled questions for the rounds (or the seeds, for self-generated questions)."""
        pool = self._guarded
        return pool[: -self.cfg.selfgen.exemplar_pool] if self.cfg.selfgen.exemplars and len(pool) > 1 else pool

    @property
    def exemplar_candidates(self) -> list[Example]:
        return self._guarded[len(self.pool) :] or self._guarded

    @property
    def eval_examples(self) -> list[Example]:
        _ = self._guarded  # the guard runs before any evaluation
        return self.held_out

    @property
    def self_questions(self) -> list[Example]:
        return [Example(**r) for r in read_jsonl(self.run_dir / "questions_self.jsonl")]

    def questions(self, k: int = 1) -> list[Example]:
        """Round k's unlabeled questions: its own slice of the pool when loop.questions is fresh."""
        c = self.cfg
        pool = self.self_questions if c.selfgen.questions else self.pool
        if c.loop.questions == "same" or c.loop.rounds == 1:
            part = pool[: c.data.limit or None]
        else:
            size = c.data.limit or len(pool) // c.loop.rounds
            part = pool[(k - 1) * size : k * size]
        if not part:
            raise InputError(
                f"round {k} has no unlabeled questions left (pool of {len(pool)}); "
                "lower data.limit or loop.rounds, or set loop.questions=same"
            )
        return part
