"""What batch-invariant greedy decoding costs: the default base evaluation (lmsi's own config
defaults: task, eval questions, modes, sc_m, shots, token cap, batch rows) on the embedded
model, timed with the hf sampler's batch-invariant greedy rows (the default) and without them
(greedy rows batched like sampled ones, as before), alternating in one process.

    python benchmarks/greedy_eval_cost.py [--reps 2] [--limit N] [--out benchmarks/results]

Writes greedy-eval-cost-<time>.md: seconds per evaluation for each way, their ratio, and how
many greedy texts the two ways disagree on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from lmsi.backends.hf import HFSampler
from lmsi.bench import cpu_name, save_result
from lmsi.config import RunConfig
from lmsi.evaluate import run_eval
from lmsi.models import load_model
from lmsi.tasks import get_task


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="eval questions (0: the config default)")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    cfg = RunConfig()
    task = get_task(cfg.data.task)
    examples = task.load(task.eval_split, args.limit or cfg.eval.limit)
    model, tok = load_model(cfg.model, "float32")
    s = cfg.sample
    times: dict[bool, list[float]] = {True: [], False: []}
    greedy: dict[bool, dict] = {}
    for rep in range(args.reps):
        for invariant in (False, True) if rep % 2 == 0 else (True, False):
            sampler = HFSampler(model, tok, batch_rows=s.batch_rows, invariant_greedy=invariant)
            with tempfile.TemporaryDirectory() as d:
                t = time.perf_counter()
                run_eval(task, sampler, examples, Path(d), cfg.eval, s.shots, s.max_new_tokens, cfg.seed, s.batch_rows)
                times[invariant].append(time.perf_counter() - t)
                rows = [json.loads(x) for x in (Path(d) / "greedy_cot.jsonl").read_text().splitlines()]
                greedy[invariant] = {r["id"]: r["paths"][0] for r in rows}
            print(f"rep {rep} invariant={invariant}: {times[invariant][-1]:.1f} s", flush=True)
    old, new = statistics.mean(times[False]), statistics.mean(times[True])
    differ = sum(greedy[True][i] != greedy[False][i] for i in greedy[True])
    text = (
        f"Machine: {cpu_name()}, {torch.get_num_threads()} torch threads, "
        f"model {cfg.model} (float32), task {task.name} {task.eval_split}, {len(examples)} questions, "
        f"modes {cfg.eval.modes}, sc_m {cfg.eval.sc_m}, {s.shots} shots, <= {s.max_new_tokens} tokens, "
        f"batch_rows {s.batch_rows}, {args.reps} reps each, alternating.\n\n"
        "| greedy rows | seconds per base evaluation (each rep) | mean |\n|---|---|---|\n"
        f"| batched like sampled rows (before) | {', '.join(f'{x:.1f}' for x in times[False])} | {old:.1f} |\n"
        f"| batch-invariant (default) | {', '.join(f'{x:.1f}' for x in times[True])} | {new:.1f} |\n\n"
        f"Ratio invariant / before: **{new / old:.3f}**. Greedy texts that differ between the two: "
        f"{differ} of {len(greedy[True])}.\n"
    )
    print(text)
    command = ("python benchmarks/greedy_eval_cost.py " + " ".join(sys.argv[1:])).strip()
    out = save_result(text, command, args.out, "greedy-eval-cost", "Cost of batch-invariant greedy decoding")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
