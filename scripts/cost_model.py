"""Cost of a sampling job from a measured throughput file (benchmarks/gpu_sampling.py output).

    .venv/bin/python scripts/cost_model.py benchmarks/results/gpu-sampling-h200.json

Prints a markdown table: the paper's GSM8K setting (7,473 questions x 32 paths) and others,
on 1-8 GPUs. Assumptions, stated in the output: decode throughput scales with 1/parameters
(decode is bound by reading the weights and by per-step overhead), workers scale linearly
(paths of different questions are independent), and prompt prefill is counted as tokens too.
"""

from __future__ import annotations

import json
import sys

JOBS = [  # name, questions, paths per question
    ("GSM8K train, m=32 (the paper)", 7473, 32),
    ("GSM8K train, m=8", 7473, 8),
    ("6 paper datasets, ~60k questions, m=32", 60000, 32),
]
PATH_TOKENS = 75  # mean generated tokens per GSM8K path, measured for the 0.5B model (runs/bench4/gsm8k)
SUFFIX_TOKENS = 80  # per-question prompt tokens after the shared few-shot prefix


def main(path: str) -> None:
    r = json.loads(open(path).read())
    best = max(r["engines"].items(), key=lambda kv: kv[1]["tok_s"])
    tok_s, params = best[1]["tok_s"], r["params"]
    print(
        f"Measured: `{best[0]}` at {tok_s:,.0f} generated tok/s on one {r['device']} ({r['dtype']}) for a "
        f"{params / 1e9:.2f} B-parameter model; baseline naive generate "
        f"{r['engines']['naive_generate']['tok_s']:,.0f} tok/s; matmul {r['matmul_tflops']:.0f} TFLOP/s.\n"
    )
    print("| job | model | tokens | 1 GPU | 2 GPUs | 4 GPUs | 8 GPUs | GPU-hours |")
    print("|---|---|---|---|---|---|---|---|")
    for name, q, m in JOBS:
        tokens = q * (m * PATH_TOKENS + SUFFIX_TOKENS)
        for size in (params / 1e9, 1.5, 7.0):
            rate = tok_s * (params / 1e9) / size
            hours = tokens / rate / 3600
            cells = " | ".join(_h(hours / n) for n in (1, 2, 4, 8))
            print(f"| {name} | {size:.2f} B | {tokens / 1e6:.1f} M | {cells} | {hours:.2f} |")
    print(
        f"\nAssumptions: {PATH_TOKENS} generated tokens per path and {SUFFIX_TOKENS} prompt tokens per question "
        "(the shared few-shot prefix is computed once); throughput ∝ 1/parameters from the measured model; "
        "linear scaling over GPUs (questions are independent)."
    )


def _h(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h"


if __name__ == "__main__":
    main(sys.argv[1])
