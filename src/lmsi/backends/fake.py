"""A deterministic fake sampler for tests: answers correctly with a seeded probability."""

from __future__ import annotations

import os
import random
import re
import time

from .base import SamplingParams


class FakeSampler:
    name = "fake"
    prompt_seeds = True  # SamplingParams.seeds: one random stream per prompt

    def __init__(self, model=None, p_correct: float = 0.7, **_):
        self.p = p_correct
        # seconds per prompt, so crash tests can land kills inside sampling and evaluation
        self.delay = float(os.environ.get("LMSI_FAKE_DELAY", "0"))

    def generate(self, prompts: list[str], params: SamplingParams, progress=None) -> list[list[str]]:
        rng = random.Random(params.seed)
        out = []
        for i, p in enumerate(prompts):
            time.sleep(self.delay)
            rng = random.Random(params.seeds[i]) if params.seeds else rng
            if p.endswith("Question:"):  # self-generated questions: write a new one
                out.append(
                    [
                        f" A shop has {rng.randint(2, 99)} boxes with {rng.randint(2, 99)} pens in each box. "
                        "How many pens does the shop have?"
                        for _ in range(params.n)
                    ]
                )
                continue
            q = p.rsplit("Q:", 1)[-1]
            nums = [int(x) for x in re.findall(r"\d+", q)] or [0]
            right = sum(nums)  # a stand-in "solution"; tests only need a stable right answer
            paths = []
            for k in range(params.n):
                greedy = params.temperature == 0 or (params.greedy_first and k == 0)
                ans = right if (greedy or rng.random() < self.p) else right + rng.randint(1, 3)
                direct = p.rstrip().endswith("The answer is")
                paths.append(f" {ans}." if direct else f" Working with {nums[0]} and more. The answer is {ans}.")
            out.append(paths)
            if progress:
                progress(i + 1)
        return out

    def score(self, prompt: str, completions: list[str]) -> list[float]:
        """Stand-in path log-probs for weighted-vote plumbing tests: shorter paths weigh more."""
        return [-len(c) / 100 for c in completions]
