"""How much a model's own vote knows: the signal self-improvement harvests, measured before
spending compute on training (`lmsi signal`).

From m sampled CoT paths (plus one greedy path) per labeled question: greedy accuracy, mean
single-path accuracy, maj@k and pass@k for k = 1, 2, 4, ..., m (the first k of the m
i.i.d. paths), and for each vote-share threshold the precision (majority correct) and
coverage (questions kept) of the majority answer. Gold answers are read only here.

    lmsi signal --task multiarith --paths 8 --limit 100
"""

from __future__ import annotations

import time
from pathlib import Path

from .config import load_config
from .io import atomic_write_text, write_json
from .pipeline import Pipeline
from .rundir import slug
from .sample import path_logprobs
from .tasks import task_from_data
from .vote import majority, weighted_majority


def _coverage(task, votes, rows, grid) -> list[dict]:
    """Precision and coverage of the majority answer at each vote-share threshold."""
    out = []
    for t in grid:
        kept = [(v, r) for v, r in zip(votes, rows) if v[0] is not None and v[1] >= t - 1e-9]
        ok = sum(task.is_correct(v[0], r["gold"]) for v, r in kept)
        out.append({"threshold": t, "coverage": len(kept) / len(rows), "precision": ok / len(kept) if kept else None})
    return out


def signal_stats(task, rows: list[dict], greedy: list[dict], logprobs: dict | None = None) -> dict:
    """rows: the sc rows of run_eval (paths, answers, gold); greedy: its greedy_cot rows;
    logprobs: {question id: each path's mean token log-prob}, for the weighted vote."""
    m = min(len(r["answers"]) for r in rows)
    n = len(rows)
    right = [[task.is_correct(a, r["gold"]) for a in r["answers"][:m]] for r in rows]
    ks = sorted({k for k in (1, 2, 4, 8, 16, 32, 64) if k <= m} | {m})
    by_k = {}
    for k in ks:
        votes = [majority(r["answers"][:k]) for r in rows]
        by_k[k] = {
            "maj": sum(task.is_correct(v[0], r["gold"]) for v, r in zip(votes, rows)) / n,
            "pass": sum(any(c[:k]) for c in right) / n,
        }
    grid = sorted({round(j / m, 4) for j in range(1, m + 1)})
    stats = {
        "n": n,
        "m": m,
        "greedy": sum(g["correct"] for g in greedy) / n if greedy else None,
        "single_path": sum(sum(c) for c in right) / (n * m),
        "by_k": by_k,
        "thresholds": _coverage(task, [majority(r["answers"][:m]) for r in rows], rows, grid),
        "unextractable_paths": sum(a is None for r in rows for a in r["answers"][:m]) / (n * m),
    }
    if logprobs:
        votes = [weighted_majority(r["answers"][:m], logprobs[r["id"]][:m]) for r in rows]
        stats["weighted"] = {
            "maj": sum(task.is_correct(v[0], r["gold"]) for v, r in zip(votes, rows)) / n,
            "thresholds": _coverage(task, votes, rows, grid),
        }
    return stats


def format_signal(name: str, s: dict) -> str:
    pct = lambda x: "–" if x is None else f"{100 * x:.1f}"  # noqa: E731
    ks = list(s["by_k"])
    lines = [
        f"## {name}",
        "",
        f"n = {s['n']} labeled questions, m = {s['m']} sampled paths each "
        f"({pct(s['unextractable_paths'])} % of paths state no answer).",
        "",
        "| greedy | single path | "
        + " | ".join(f"maj@{k}" for k in ks)
        + " | "
        + " | ".join(f"pass@{k}" for k in ks)
        + " |",
        "|" + "---|" * (2 + 2 * len(ks)),
        f"| {pct(s['greedy'])} | {pct(s['single_path'])} | "
        + " | ".join(pct(s["by_k"][k]["maj"]) for k in ks)
        + " | "
        + " | ".join(pct(s["by_k"][k]["pass"]) for k in ks)
        + " |",
        "",
        "| vote share ≥ | questions kept (%) | majority correct (%) |",
        "|---|---|---|",
    ]
    w = s.get("weighted")
    if w:
        lines[-2:] = [
            f"Weighted vote (each path counts exp(mean token log-prob)): maj@{s['m']} {pct(w['maj'])} "
            f"vs. {pct(s['by_k'][s['m']]['maj'])} unweighted.",
            "",
            "| vote share ≥ | questions kept (%) | majority correct (%) | weighted: kept (%) | weighted: correct (%) |",
            "|---|---|---|---|---|",
        ]
    for i, t in enumerate(s["thresholds"]):
        extra = f" {pct(w['thresholds'][i]['coverage'])} | {pct(w['thresholds'][i]['precision'])} |" if w else ""
        lines.append(f"| {t['threshold']:.3f} | {pct(t['coverage'])} | {pct(t['precision'])} |{extra}")
    return "\n".join(lines)


def write_signal(out_dir, name: str, stats: dict) -> str:
    write_json(out_dir / "signal.json", stats)
    text = format_signal(name, stats) + "\n"
    atomic_write_text(out_dir / "signal.md", text)
    return text


def run_signal(
    task: str,
    model: str | None,
    paths: int,
    split: str | None,
    limit: int,
    weighted: bool,
    run_dir: Path | None,
    config: Path | None,
    overrides: list[str],
    log=print,
    argv: list[str] | None = None,
) -> tuple[str, Path]:
    """`lmsi signal`: evaluate greedy CoT and m sampled paths on labeled questions (by default the
    task's unlabeled split, whose gold is read only here), then the stats; returns (markdown, dir)."""
    extra = [f"data.task={task}", f"eval.task={task}", f"eval.limit={limit}", "eval.modes=[greedy_cot,sc]"]
    extra += [f"eval.sc_m={paths}", "sample.early_stop=false"] + (
        [f"model={model}"] if model else []
    )  # pass@k: all paths
    cfg = load_config(config, overrides + extra)
    split = split or task_from_data(task, vars(cfg.data)).unlabeled_split
    run_dir = run_dir or Path("runs") / "signal" / slug(task, split, (model or "default").split("/")[-1], f"m{paths}")
    p = Pipeline.open(config, run_dir, overrides + extra + [f"eval.split={split}"], log=log, argv=argv)
    p.evaluate_only()
    rows, greedy = p.rundir.rows(p.run_dir / "eval", "sc"), p.rundir.rows(p.run_dir / "eval", "greedy_cot")
    lp = None
    if weighted:
        t0 = time.time()
        lp = path_logprobs(lambda: p.sampler(p.runtime.spec(0)), rows, p.run_dir / "eval" / "path_logprobs.jsonl")
        if not p.manifest.done("score_paths"):
            p.manifest.mark("score_paths", time.time() - t0)
    stats = signal_stats(p.eval_task, rows, greedy, lp)
    return write_signal(p.run_dir, f"{task} ({split}), {p.cfg.model}", stats), p.run_dir
