"""The contamination guard's policy: unlabeled training questions must not overlap the eval set.

Same task and split is an overlap outright; otherwise `tasks.overlap.find_overlap` looks for
near-duplicate questions. `data.overlap` says what happens then: refuse the run (default), drop
the overlapping questions from the unlabeled pool, or allow them. Either way contamination.json
in the run directory records what was found, and the report lists it.
"""

from __future__ import annotations

from pathlib import Path

from .config import DataConfig
from .io import InputError, write_json
from .tasks import Example, Task
from .tasks.overlap import find_overlap


def guard(
    pool: list[Example],
    evals: list[Example],
    task: Task,
    split: str,
    eval_task: Task,
    eval_split: str | None,
    d: DataConfig,
    run_dir: Path,
    log=print,
) -> list[Example]:
    """The unlabeled pool after the policy; raises InputError when it refuses."""
    same = bool(evals) and eval_task.name == task.name and eval_split == split
    if same:
        ids = {e.id for e in evals}
        found = [{"eval_id": q.id, "pool_id": q.id, "share": 1.0} for q in pool if q.id in ids]
    else:
        found = find_overlap(pool, evals)
    info = {
        "pool": len(pool),
        "eval": len(evals),
        "same_split": same,
        "policy": d.overlap,
        "overlapping": len(found),
        "pairs": found[:100],
    }
    if (found or same) and d.overlap == "refuse":
        why = (
            f"the unlabeled pool and the eval set are both split {split!r} of {d.task!r}"
            if same
            else f"{len(found)} of {len(evals)} eval questions near-duplicate unlabeled questions "
            f"(e.g. {found[0]['eval_id']} ~ {found[0]['pool_id']}: {100 * found[0]['share']:.0f}% shared 8-grams)"
        )
        raise InputError(
            f"contamination guard: {why}. Pick disjoint splits, or set data.overlap=drop to remove them "
            "from the unlabeled pool, or data.overlap=allow to keep them (the report lists them)"
        )
    if d.overlap == "drop":
        drop = {f["pool_id"] for f in found}
        pool = [q for q in pool if q.id not in drop]
        info["dropped"] = len(drop)
        if not pool:
            raise InputError("contamination guard: every unlabeled question overlaps the eval set")
    write_json(Path(run_dir) / "contamination.json", info)
    if found:
        log(f"contamination guard: {len(found)} overlapping questions ({d.overlap})")
    return pool
