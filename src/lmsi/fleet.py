"""Sampling on a Ray cluster (`engine=ray`): each worker holds one sampler backend and the
sample stage's chunks are spread over the workers.

Results come back in submission order (ActorPool.map), so the driver commits chunks to
samples.jsonl in the same order, with the same per-chunk seeds, as a single process does:
the dataset is identical for a seed. A worker that dies is restarted and its chunk retried
by Ray; if the whole stage dies, the committed chunks stay and a rerun continues after them.
"""

from __future__ import annotations

import os

from .backends import from_recipe
from .config import ConfigError


class _Worker:
    def __init__(self, recipe: dict):
        import torch

        torch.set_num_threads(max(1, int(os.environ.get("LMSI_WORKER_THREADS", "1"))))
        self.sampler = from_recipe(recipe)

    def generate(self, prompts, params):
        return self.sampler.generate(prompts, params)

    def pid(self) -> int:
        return os.getpid()


class RayFleet:
    """`map(jobs)` yields each job's result in order; jobs are (prompts, params)."""

    def __init__(self, recipe: dict, workers: int, cpus_per_worker: float = 1.0, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise ConfigError("engine=ray needs Ray: pip install 'lmsi[ray]'") from None
        if not ray.is_initialized():
            ray.init(
                address=address or None,
                include_dashboard=False,
                log_to_driver=False,
                **({} if address else {"num_cpus": max(1, int(workers * cpus_per_worker))}),
            )
        remote = ray.remote(num_cpus=cpus_per_worker, max_restarts=3, max_task_retries=3)(_Worker)
        self.actors = [remote.remote(recipe) for _ in range(workers)]
        self.pool = ray.util.ActorPool(self.actors)

    def map(self, jobs):
        return self.pool.map(lambda actor, job: actor.generate.remote(*job), jobs)

    def generate(self, prompts, params, progress=None):
        return next(iter(self.map([(prompts, params)])))
