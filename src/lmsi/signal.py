"""How much a model's own vote knows: the signal self-improvement harvests, measured before
spending compute on training (`lmsi signal`).

From m sampled CoT paths (plus one greedy path) per labeled question: greedy accuracy, mean
single-path accuracy, maj@k and pass@k for k = 1, 2, 4, ..., m (the first k of the m
i.i.d. paths), and for each vote-share threshold the precision (majority correct) and
coverage (questions kept) of the majority answer. Gold answers are read only here.
"""

from __future__ import annotations

from .io import atomic_write_text, write_json
from .vote import majority


def signal_stats(task, rows: list[dict], greedy: list[dict]) -> dict:
    """rows: the sc rows of run_eval (paths, answers, gold); greedy: its greedy_cot rows."""
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
    votes = [majority(r["answers"][:m]) for r in rows]
    thresholds = []
    for t in sorted({round(j / m, 4) for j in range(1, m + 1)}):
        kept = [(v, r) for v, r in zip(votes, rows) if v[0] is not None and v[1] >= t - 1e-9]
        ok = sum(task.is_correct(v[0], r["gold"]) for v, r in kept)
        thresholds.append({"threshold": t, "coverage": len(kept) / n, "precision": ok / len(kept) if kept else None})
    return {
        "n": n, "m": m,
        "greedy": sum(g["correct"] for g in greedy) / n if greedy else None,
        "single_path": sum(sum(c) for c in right) / (n * m),
        "by_k": by_k, "thresholds": thresholds,
        "unextractable_paths": sum(a is None for r in rows for a in r["answers"][:m]) / (n * m),
    }


def format_signal(name: str, s: dict) -> str:
    pct = lambda x: "–" if x is None else f"{100 * x:.1f}"  # noqa: E731
    ks = list(s["by_k"])
    lines = [f"## {name}", "", f"n = {s['n']} labeled questions, m = {s['m']} sampled paths each "
             f"({pct(s['unextractable_paths'])} % of paths state no answer).", "",
             "| greedy | single path | " + " | ".join(f"maj@{k}" for k in ks) + " | " + " | ".join(f"pass@{k}" for k in ks) + " |",
             "|" + "---|" * (2 + 2 * len(ks)),
             f"| {pct(s['greedy'])} | {pct(s['single_path'])} | " + " | ".join(pct(s["by_k"][k]["maj"]) for k in ks)
             + " | " + " | ".join(pct(s["by_k"][k]["pass"]) for k in ks) + " |", "",
             "| vote share ≥ | questions kept (%) | majority correct (%) |", "|---|---|---|"]
    lines += [f"| {t['threshold']:.3f} | {pct(t['coverage'])} | {pct(t['precision'])} |" for t in s["thresholds"]]
    return "\n".join(lines)


def write_signal(out_dir, name: str, stats: dict) -> str:
    write_json(out_dir / "signal.json", stats)
    text = format_signal(name, stats) + "\n"
    atomic_write_text(out_dir / "signal.md", text)
    return text
