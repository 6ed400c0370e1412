"""`lmsi bench train`: SFT training throughput on fixed rows in the build stage's format.

The rows are made by the build stage itself (build_rows) from a task's first unlabeled
questions, each "sampled" path being one of the task's exemplar rationales, so prompts and
completions have real lengths and every format appears. Tokens per second counts the tokens
the model is trained on (prompt and completion with EOS, cut at train.max_length, times the
epochs) over the trainer's own train_runtime; set-up, merge and save are excluded there and
included in the end-to-end seconds, and in the CPU seconds (all threads of the process), which
other jobs on a shared machine sway less than wall time. The final loss is a sanity check: two code paths that
learn the same thing from the same rows and seed give the same loss.
"""

from __future__ import annotations

import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from .build import build_rows
from .config import BuildConfig, load_config
from .io import write_jsonl
from .models import load_model, pick_dtype
from .tasks import FORMATS, get_task
from .train import run_train


def bench_rows(task_name: str, n: int, shots: int) -> list[dict]:
    """`n` SFT rows built from the task's first `n` unlabeled questions, formats cycled."""
    task = get_task(task_name)
    questions = task.load(task.unlabeled_split, n)
    samples, votes = [], []
    for i, q in enumerate(questions):
        ex = task.exemplars[i % len(task.exemplars)]
        path = f" {ex.reasoning} The answer is {task.show(ex.answer)}."
        samples.append({"id": q.id, "question": q.question, "completions": [path], "answers": [ex.answer]})
        votes.append({"id": q.id, "answer": ex.answer, "confidence": 0.5 + (i % 5) / 10})
    cfg = BuildConfig(max_paths=1, max_rows=0, shots=shots, formats={f: 1.0 for f in FORMATS})
    return build_rows(task, samples, votes, cfg, shots, seed=0)


def trained_tokens(tok, rows: list[dict], max_length: int) -> int:
    """Tokens per epoch: prompt + completion + EOS per row, at most max_length."""
    n = 0
    for r in rows:
        p = tok(r["prompt"], add_special_tokens=False).input_ids
        c = tok(r["completion"], add_special_tokens=False).input_ids
        n += min(len(p) + len(c) + 1, max_length)
    return n


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_train_bench(
    spec: str, task_name: str, rows: int, shots: int, overrides: list[str], repeat: int, log=print
) -> tuple[str, list[dict]]:
    import torch

    cfg = load_config(overrides=list(overrides)).train
    data = bench_rows(task_name, rows, shots)
    dtype = pick_dtype("auto")
    results = []
    for i in range(repeat):
        model, tok = load_model(spec, dtype)
        tokens = trained_tokens(tok, data, cfg.max_length) * cfg.epochs
        with tempfile.TemporaryDirectory() as d:
            write_jsonl(Path(d) / "train.jsonl", data)
            log(f"bench train: run {i + 1}/{repeat} ...")
            t, cpu = time.perf_counter(), time.process_time()
            run_train(model, tok, Path(d), cfg, seed=0)
            total, cpu = time.perf_counter() - t, time.process_time() - cpu
            history = [json.loads(line) for line in (Path(d) / "train_log.jsonl").read_text().splitlines()]
        end = next(h for h in reversed(history) if "train_runtime" in h)
        steps = [h for h in history if "loss" in h]
        results.append(
            {
                "run": i + 1,
                "tokens": tokens,
                "steps": len(steps),
                "train_s": end["train_runtime"],
                "tok_s": tokens / end["train_runtime"],
                "total_s": total,
                "cpu_s": cpu,  # all threads; less swayed than wall time by other jobs on the machine
                "first_loss": steps[0]["loss"] if steps else None,
                "train_loss": end.get("train_loss"),
            }
        )
        del model
    lengths = sorted(trained_tokens(tok, [r], cfg.max_length) for r in data)
    lines = [
        f"Workload: {len(data)} SFT rows built from {task_name} (formats cycled, {shots}-shot; "
        f"{lengths[0]}-{lengths[-1]} tokens, median {lengths[len(lengths) // 2]}), train.{cfg.method} "
        f"adapter={cfg.adapter} batch_size={cfg.batch_size} epochs={cfg.epochs} max_length={cfg.max_length} "
        f"weighting={cfg.weighting}; model `{spec}` (torch {dtype}); overrides: {' '.join(overrides) or 'none'}.",
        f"Code: commit {_commit()}. Machine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads{', CUDA' if torch.cuda.is_available() else ''}.",
        "",
        "| run | trained tokens | steps | train s | tok/s | end-to-end s | CPU s | tok per CPU s | first loss | train loss |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['run']} | {r['tokens']:.0f} | {r['steps']} | {r['train_s']:.1f} | {r['tok_s']:.1f} | "
            f"{r['total_s']:.1f} | {r['cpu_s']:.1f} | {r['tokens'] / r['cpu_s']:.1f} | {r['first_loss']:.6f} | "
            f"{r['train_loss']:.6f} |"
        )
    return "\n".join(lines), results


def save_train_result(text: str, command: str, tag: str, out_dir: Path = Path("benchmarks/results")) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"train-{time.strftime('%Y%m%d-%H%M%S')}{'-' + tag if tag else ''}.md"
    path.write_text(f"# lmsi bench train\n\nCommand: `{command}`\n\n{text}\n")
    return path
