"""What early stopping costs or saves in wall time on the hf sampler: the sample stage on the same
questions without waves, with one call per question and wave (how waves were drawn before
2026-12-03), and with one call per wave over the open questions (per-prompt seeds).

    python benchmarks/earlystop_speed.py [--questions 24] [--m 8] [--wave 4] [--tokens 128]

Writes benchmarks/results/earlystop-speed-<time>.md: seconds, paths drawn, and each way's time
as a ratio of the no-waves baseline, measured in the same process.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from lmsi.backends.hf import HFSampler
from lmsi.bench import cpu_name, save_result
from lmsi.config import SampleConfig
from lmsi.earlystop import Waves
from lmsi.models import load_model
from lmsi.sample import run_sample
from lmsi.tasks import get_task

MODEL = "embedded:qwen2.5-coder-0.5b"


class PerQuestion:
    """The same sampler without per-prompt seeds: draw_waves falls back to a call per question."""

    prompt_seeds = False

    def __init__(self, inner):
        self.inner = inner

    def generate(self, *a, **k):
        return self.inner.generate(*a, **k)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="multiarith")
    ap.add_argument("--questions", type=int, default=24)
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--wave", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--out", default="benchmarks/results")
    a = ap.parse_args()
    task = get_task(a.task)
    qs = task.load(task.resolve_split("auto", "unlabeled"), a.questions)
    model, tok = load_model(MODEL, "float32")
    sampler = HFSampler(model, tok, batch_rows=128)
    cfg = SampleConfig(m=a.m, wave=a.wave, max_new_tokens=a.tokens, shots=3, batch_rows=128)
    waves = Waves(a.m, a.wave, threshold=0.5, distinct=2)
    ways = [("no waves (all m paths)", sampler, None), ("waves, one call per question", PerQuestion(sampler), waves)]
    ways.append(("waves, one call per wave", sampler, waves))
    rows = []
    for name, s, w in ways:
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            out = run_sample(task, s, qs, Path(d), cfg, 0, w)
            rows.append((name, time.perf_counter() - t, sum(len(r["answers"]) for r in out)))
        print(f"{name}: {rows[-1][1]:.1f} s, {rows[-1][2]} paths", flush=True)
    base = rows[0][1]
    table = "| sampling | seconds | paths drawn | time / no waves |\n|---|---:|---:|---:|\n" + "\n".join(
        f"| {n} | {t:.1f} | {p} | {t / base:.2f} |" for n, t, p in rows
    )
    command = ("python benchmarks/earlystop_speed.py " + " ".join(sys.argv[1:])).strip()
    text = (
        f"Machine: {cpu_name()}, "
        f"{torch.get_num_threads()} torch threads, {MODEL} (float32), {a.task}, {len(qs)} questions, m={a.m}, "
        f"waves of {a.wave}, <= {a.tokens} tokens, batch_rows 128, threshold 0.5, 2 distinct paths.\n\n{table}"
    )
    print(text)
    print(f"wrote {save_result(text, command, a.out, 'earlystop-speed', 'Early stopping, wall time')}")


if __name__ == "__main__":
    main()
