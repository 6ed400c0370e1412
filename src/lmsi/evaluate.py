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


def _rows(task: Task, examples, prompts, outs, fmt: str, vote: bool) -> list[dict]:
    rows = []
    for e, p, o in zip(examples, prompts, outs):
        answers = [task.extract(c, fmt) for c in o]
        pred = majority(answers)[0] if vote else answers[0]
        rows.append({"id": e.id, "prompt": p, "paths": o, "answers": answers, "prediction": pred,
                     "gold": e.answer, "correct": task.is_correct(pred, e.answer)})
    return rows


def eval_modes(task: Task, sampler: Sampler, examples: list[Example], modes: list[str], cfg: EvalConfig,
               shots: int, max_new_tokens: int, seed: int) -> dict[str, list[dict]]:
    """Per-item rows for each mode. Greedy CoT and maj@m come from one batch (the first path
    of each prompt decodes greedily), which saves a prefill and a half-empty decode pass."""
    out = {}
    cot = [m for m in ("greedy_cot", "sc") if m in modes]
    if cot:
        prompts = [task.prompt(e.question, "fewshot_cot", shots) for e in examples]
        n = ("greedy_cot" in cot) + (cfg.sc_m if "sc" in cot else 0)
        params = SamplingParams(n=n, temperature=0.7 if "sc" in cot else 0.0, max_new_tokens=max_new_tokens,
                                stop=task.stop, seed=seed, greedy_first="greedy_cot" in cot)
        with bar(" + ".join(cot), total=len(examples)) as tracker:
            outs = sampler.generate(prompts, params, progress=tracker.to)
        if "greedy_cot" in cot:
            out["greedy_cot"] = _rows(task, examples, prompts, [o[:1] for o in outs], "fewshot_cot", vote=False)
            outs = [o[1:] for o in outs]
        if "sc" in cot:
            out["sc"] = _rows(task, examples, prompts, outs, "fewshot_cot", vote=True)
    if "direct" in modes:
        prompts = [task.prompt(e.question, "fewshot_direct", shots) for e in examples]
        params = SamplingParams(n=1, temperature=0.0, max_new_tokens=8, stop=task.stop + ("\n",), seed=seed)
        with bar("direct", total=len(examples)) as tracker:
            outs = sampler.generate(prompts, params, progress=tracker.to)
        out["direct"] = _rows(task, examples, prompts, outs, "fewshot_direct", vote=False)
    return out


def run_eval(task: Task, sampler: Sampler, examples: list[Example], out_dir: Path, cfg: EvalConfig, shots: int,
             max_new_tokens: int, seed: int) -> dict:
    """Evaluate every mode, skipping modes whose per-item file already exists (resume)."""
    todo = [m for m in cfg.modes if not (out_dir / f"{m}.jsonl").exists()]
    for mode, rows in eval_modes(task, sampler, examples, todo, cfg, shots, max_new_tokens, seed).items():
        write_jsonl(out_dir / f"{mode}.jsonl", rows)
    summary = {m: summarize(read_jsonl(out_dir / f"{m}.jsonl")) for m in cfg.modes}
    summary["task"] = {"name": task.name, "version": task.version}
    write_json(out_dir / "summary.json", summary)
    return summary
