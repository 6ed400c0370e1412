"""Evaluate a model on a labeled held-out split: greedy CoT, self-consistency maj@m, direct.

Writes `<mode>.jsonl` (prompt, paths, extracted answers, gold, correct) and `summary.json`
with n, accuracy, a 95% bootstrap CI and the unextractable rate.
"""

from __future__ import annotations

import random
from pathlib import Path

from .backends import Sampler, SamplingParams
from .config import EvalConfig
from .io import read_jsonl, write_json, write_jsonl
from .progress import bar
from .tasks import Example, Task
from .vote import majority

MODES = {  # mode -> (prompt format, paths, temperature)
    "greedy_cot": ("fewshot_cot", 1, 0.0),
    "sc": ("fewshot_cot", None, 0.7),
    "direct": ("fewshot_direct", 1, 0.0),
}


def bootstrap_ci(correct: list[bool], iters: int = 2000, seed: int = 0) -> tuple[float, float]:
    if not correct:
        return 0.0, 0.0
    rng = random.Random(seed)
    n = len(correct)
    stats = sorted(sum(rng.choices(correct, k=n)) / n for _ in range(iters))
    return stats[int(0.025 * iters)], stats[int(0.975 * iters) - 1]


def summarize(rows: list[dict]) -> dict:
    correct = [r["correct"] for r in rows]
    lo, hi = bootstrap_ci(correct)
    return {
        "n": len(rows), "accuracy": sum(correct) / max(1, len(rows)), "ci95": [lo, hi],
        "unextractable": sum(r["prediction"] is None for r in rows) / max(1, len(rows)),
    }


def eval_mode(task: Task, sampler: Sampler, examples: list[Example], mode: str, cfg: EvalConfig, shots: int,
              max_new_tokens: int, seed: int) -> list[dict]:
    fmt, n, temp = MODES[mode]
    n = n or cfg.sc_m
    prompts = [task.prompt(e.question, fmt, shots) for e in examples]
    params = SamplingParams(n=n, temperature=temp, max_new_tokens=8 if fmt.endswith("direct") else max_new_tokens,
                            stop=task.stop + (("\n",) if fmt.endswith("direct") else ()), seed=seed)
    rows = []
    with bar(f"eval {mode}", total=len(examples)) as tracker:
        outs = sampler.generate(prompts, params, progress=tracker.to)
    for e, p, o in zip(examples, prompts, outs):
        answers = [task.extract(c, fmt) for c in o]
        pred = majority(answers)[0] if n > 1 else answers[0]
        rows.append({"id": e.id, "prompt": p, "paths": o, "answers": answers, "prediction": pred,
                     "gold": e.answer, "correct": task.is_correct(pred, e.answer)})
    return rows


def run_eval(task: Task, sampler: Sampler, examples: list[Example], out_dir: Path, cfg: EvalConfig, shots: int,
             max_new_tokens: int, seed: int) -> dict:
    """Evaluate every mode, skipping modes whose per-item file already exists (resume)."""
    summary = {}
    for mode in cfg.modes:
        path = out_dir / f"{mode}.jsonl"
        if path.exists():
            rows = read_jsonl(path)
        else:
            rows = eval_mode(task, sampler, examples, mode, cfg, shots, max_new_tokens, seed)
            write_jsonl(path, rows)
        summary[mode] = summarize(rows)
    summary["task"] = {"name": task.name, "version": task.version}
    write_json(out_dir / "summary.json", summary)
    return summary
