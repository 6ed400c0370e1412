"""Build report.md and report.png from the files in a run directory (stages never call it).

Shows before/after accuracy, then one row per round: held-out accuracy of each round's
model next to the label-free signals a user without labels can watch (agreement of the
model's own votes on fresh questions), and what each round's training set looked like.
"""

from __future__ import annotations

from pathlib import Path

from .evaluate import MODE_NAMES
from .io import atomic_write_text, read_json
from .plots import modes_in, plot_grpo_steps, plot_report
from .rundir import RunDir
from .stats import (
    agreement_stalled,
    paired_gain,
    paired_gain_over_draws,
    probe_agreement,
    pseudo_label_stats,
    spread,
)


def _fmt(s: dict | None, mode: str | None = None) -> str:
    s = (s or {}).get(mode) if mode else s
    if not s:
        return "–"
    f1 = f", F1 {100 * s['f1']:.1f}" if "f1" in s else ""
    return f"{100 * s['accuracy']:.1f} [{100 * s['ci95'][0]:.0f}–{100 * s['ci95'][1]:.0f}]{f1}"


def format_table(before: dict | None, after: dict | None, label: str = "before") -> str:
    out = [f"| metric | {label} | after | Δ |", "|---|---|---|---|"]
    modes = modes_in(before, after)
    n = {m: ((before or {}).get(m) or (after or {}).get(m) or {}).get("n", 0) for m in modes}
    for mode in modes:
        b, a = (before or {}).get(mode), (after or {}).get(mode)
        delta = f"{100 * (a['accuracy'] - b['accuracy']):+.1f}" if a and b else "–"
        fewer = f" (first {n[mode]} questions)" if n[mode] < max(n.values()) else ""  # eval.sc_limit
        out.append(f"| {MODE_NAMES[mode]}{fewer} | {_fmt(b)} | {_fmt(a)} | {delta} |")
    return "\n".join(out)


# ---------------------------------------------------------------------------
def collect_rounds(run: RunDir, task, threshold: float) -> list[dict]:
    """One dict per round directory: its data stats, its model's eval (the draw the loop went on
    with) and label-free agreement, and the evaluated training draws."""
    rounds = []
    for k in run.rounds():
        votes, out = run.rows(run.round_dir(k), "votes"), run.draw_dir(k, run.chosen_draw(k))
        rounds.append(
            {
                "k": k,
                "eval": run.summary(out / "eval"),
                "probe": probe_agreement(out / "eval"),
                "data": pseudo_label_stats(votes, threshold, task) if votes else None,
                "rows": len(run.rows(out, "train")),
                "log": run.rows(out, "train_log"),
                "grpo_steps": run.rows(out, "grpo_steps"),
                "grpo": read_json(out / "grpo_prompts.json"),
                "votes": votes,
                "trained": run.trained(k),
                "draws": [(d, run.draw_dir(k, d) / "eval") for d in run.draws(k)],
            }
        )
    return rounds


def draws_section(base: Path, rounds: list[dict], modes: list[str]) -> list[str]:
    """Rounds trained more than once on the same samples (train.draws): each metric's mean and
    spread over the draws, and the per-item paired change averaged over draws."""
    rows = []
    for r in (r for r in rounds if len(r["draws"]) > 1):
        for m in modes:
            accs = [(RunDir.summary(e) or {}).get(m, {}).get("accuracy") for _, e in r["draws"]]
            if None in accs:
                continue
            s = spread(accs)
            p = paired_gain_over_draws(base / f"{m}.jsonl", [e / f"{m}.jsonl" for _, e in r["draws"]])
            each = ", ".join(f"{100 * a:.1f}" for a in accs)
            rows.append(
                f"| {r['k']} | {MODE_NAMES[m]} | {s['n']} | {100 * s['mean']:.1f} ± {100 * s['sd']:.1f} ({each}) "
                f"| {cell_paired(p)} |"
            )
        if {"greedy_cot", "sc"} <= set(modes):  # the paper's transfer: greedy after vs the vote before
            p = paired_gain_over_draws(base / "sc.jsonl", [e / "greedy_cot.jsonl" for _, e in r["draws"]])
            rows.append(
                f"| {r['k']} | greedy CoT after vs self-consistency before | {len(r['draws'])} | | {cell_paired(p)} |"
            )
    if not rows:
        return []
    return [
        "## Training draws (same samples, other build/train seeds)",
        "",
        "| round | metric | draws | mean ± sd (each draw) | paired Δ vs before, averaged over draws [95% CI] |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "The rounds table above shows the draw the loop went on with (chosen without labels: the highest "
        "agreement on the eval questions).",
        "",
    ]


def per_round_tables(before: dict | None, base_probe: float | None, rounds: list[dict], modes: list[str]) -> list[str]:
    """Model of round k (0 = base): accuracy, and two label-free agreements (mean vote share):
    on the fixed eval questions, and of its own vote on round k+1's fresh questions."""
    fresh = {r["k"] - 1: r["data"]["mean_confidence"] for r in rounds if r["data"]}
    probe = {0: base_probe, **{r["k"]: r["probe"] for r in rounds}}
    head = (
        "| round | "
        + " | ".join(MODE_NAMES[m] for m in modes)
        + " | agreement, eval questions (label-free) | agreement, next round's questions (label-free) |"
    )
    lines = [head, "|" + "---|" * (len(modes) + 3)]
    models = [(0, before)] + [(r["k"], r["eval"]) for r in rounds if r["trained"]]
    for k, summ in models:
        a = f"{probe[k]:.3f}" if probe.get(k) is not None else "–"
        b = f"{fresh[k]:.3f}" if k in fresh else "–"
        lines.append(f"| {k} | " + " | ".join(_fmt(summ, m) for m in modes) + f" | {a} | {b} |")
    lines += [
        "",
        "Round k's row is the model after k rounds (0 = the base model). Agreement is the mean vote "
        "share of the model's own sampled paths; no label is read. On the eval questions it is measured "
        "on the same questions for every model; on the next round's questions the questions change.",
        "",
        "| round | questions | kept | pseudo-label acc. (kept) | mean confidence | distinct answers/q | train rows |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        d = r["data"]
        if not d:
            continue
        acc = "–" if d["pseudo_label_accuracy"] is None else f"{100 * d['pseudo_label_accuracy']:.1f}%"
        lines.append(
            f"| {r['k']} | {d['questions']} | {d['kept']} | {acc} | {d['mean_confidence']:.3f} | "
            f"{d['mean_distinct_answers']:.2f} | {r['rows'] if r['trained'] or r['rows'] else '–'} |"
        )
    lines += [
        "",
        "Each round's data was sampled by the previous round's model; gold answers are read only for "
        "the pseudo-label accuracy column.",
    ]
    return lines


def rule_verdict(base_probe: float | None, rounds: list[dict], min_gain: float) -> str | None:
    """Where the label-free stop rule (agreement on the eval questions) stops, next to what
    held-out accuracy says."""
    probe = {0: base_probe, **{r["k"]: r["probe"] for r in rounds if r["trained"]}}
    probe = {k: v for k, v in probe.items() if v is not None}
    acc = {r["k"]: r["eval"]["greedy_cot"]["accuracy"] for r in rounds if r["eval"] and "greedy_cot" in r["eval"]}
    if len(probe) < 2:
        return None
    stop = next(
        (k for k in sorted(probe)[1:] if k - 1 in probe and agreement_stalled(probe[k - 1], probe[k], min_gain)), None
    )
    best = max(acc, key=acc.get) if acc else None
    said = f"it stops after round {stop} and keeps round {stop - 1}'s model" if stop else "it does not stop"
    return f"Stop rule (agreement on the eval questions must rise by ≥ {min_gain}): {said}; " + (
        f"the best held-out greedy CoT was round {best}." if best is not None else "no held-out accuracy to compare."
    )


def _format_counts(rows: list[dict]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["format"]] = counts.get(r["format"], 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


def cell_paired(p: dict | None) -> str:
    if not p:
        return "–"
    lo, hi = p["ci95"]
    return f"{100 * p['delta']:+.1f} [{100 * lo:+.0f}, {100 * hi:+.0f}]; {p['won']} won, {p['lost']} lost of {p['n']}"


def paired_section(base: Path, evals: list[tuple[int, Path]], modes: list[str]) -> list[str]:
    """Per-item changes on the same questions, and the paper's transfer: does greedy CoT after
    training reach the base model's self-consistency? One block per evaluated round (k, eval dir),
    so a multi-round run shows where the gain stops being significant."""
    rows = []
    for k, last in evals:
        tag = f"round {k}: " if len(evals) > 1 else ""
        pairs = [
            (f"{MODE_NAMES[m]}: after vs before", paired_gain(base / f"{m}.jsonl", last / f"{m}.jsonl")) for m in modes
        ]
        if {"greedy_cot", "sc"} <= set(modes):
            pairs.append(
                (
                    "greedy CoT after vs self-consistency before",
                    paired_gain(base / "sc.jsonl", last / "greedy_cot.jsonl"),
                )
            )
        rows += [f"| {tag}{name} | {cell_paired(p)} |" for name, p in pairs if p]
    if not rows:
        return []
    return [
        "## Paired per-item comparison (Δ points, 95% bootstrap CI)",
        "",
        "| comparison | Δ [CI]; items won / lost |",
        "|---|---|",
        *rows,
        "",
    ]


def grpo_section(run: RunDir, rounds: list[dict]) -> list[str]:
    """What GRPO decided before training (prompts kept, votes sampled, cap) and its stop; the plot."""
    lines = []
    for r in rounds:
        g = r["grpo"]
        if not g:
            continue
        line = (
            f"- round {r['k']}: {g['prompts'] - g['left_out']} of {g['prompts']} prompts trained on ({g['left_out']} "
            f"left out: pseudo-label share < {g['threshold']} of N={g['votes']} votes, {g['sampled_votes']} of them "
            f"sampled before training in {g.get('vote_seconds', '?')} s); completion cap {g['max_tokens']} tokens ({g['cap_rule']}), "
            f"{g.get('generated_tokens', '?')} tokens generated in training"
        )
        if g.get("agreement_before") is not None:
            line += f"; agreement {g['agreement_before']:.3f} before, best {g['best_agreement']:.3f} at step {g['best_step']}"
            line += f", stopped at step {g['stopped_at']} (kept step {g['best_step']})" if g.get("stopped_at") else ""
        lines.append(line + ".")
    if not lines:
        return []
    if any(r["grpo_steps"] for r in rounds):
        plot_grpo_steps(run, rounds)
        lines += ["", "![GRPO per step](report_grpo.png)"]
    return ["## GRPO", "", *lines, ""]


def build_report(run_dir: Path) -> str:
    """Write report.md (+ report.png) and return the before/after table."""
    run = RunDir(run_dir)
    cfg, task = run.config, run.task
    threshold = cfg["build"]["threshold"]
    before = run.summary(run.path / "eval_base")
    student_before = run.summary(run.path / "eval_student")
    rounds = collect_rounds(run, task, threshold)
    done = [r for r in rounds if r["trained"] and r["eval"]]
    after = done[-1]["eval"] if done else None
    table = format_table(student_before or before, after, "student before" if student_before else "before")
    d, s = cfg["data"], cfg["sample"]
    lines = [
        f"# lmsi report: {run.path.name}",
        "",
        f"Model `{cfg['model']}` on task `{d['task']}`; {d['limit'] or 'all'} unlabeled questions per round, "
        f"m={s['m']}, T={s['temperature']}, threshold={threshold}.",
        "",
    ]
    if cfg["student"]:
        lines += [
            f"Distillation: the teacher `{cfg['model']}` sampled and voted; the student `{cfg['student']}` "
            "was trained. Teacher before:",
            "",
            format_table(before, None, "teacher"),
            "",
        ]
    lines += [f"## Held-out accuracy (%, 95% bootstrap CI), after {len(done)} round(s)", "", table, ""]
    if before:
        n = next(iter(v for v in before.values() if isinstance(v, dict) and "n" in v))["n"]
        e = cfg["eval"]
        split = e["task"] or task.resolve_split(e["split"], "eval")
        lines += [f"n = {n} held-out questions ({split} split).", ""]
    base_dir = run.base_eval
    if before and done:
        evals = [(r["k"], run.eval_dir(r["k"])) for r in done]
        lines += paired_section(base_dir, evals, modes_in(before, after))
        lines += draws_section(base_dir, rounds, modes_in(before, after))
    loop = run.json("loop.json")
    if rounds:
        base_probe = probe_agreement(base_dir)
        lines += (
            ["## Rounds", ""]
            + per_round_tables(student_before or before, base_probe, rounds, modes_in(before, after))
            + [""]
        )
        if loop and loop.get("stopped"):
            lines += [f"**Stopped early:** {loop['stopped']}.", ""]
        would = rule_verdict(base_probe, rounds, cfg["loop"]["min_gain"])
        if would:
            lines += [would, ""]
    lines += grpo_section(run, rounds)
    last = next((r for r in reversed(rounds) if r["rows"]), None)
    if last:
        rows = run.rows(run.draw_dir(last["k"], run.chosen_draw(last["k"])), "train")
        lines += [f"Training formats in round {last['k']}: {_format_counts(rows)}.", ""]
    extras = []
    qs = run.stages
    if "questions" in qs:
        q = qs["questions"]
        extras.append(
            f"- self-generated questions: {q['generated']} drawn, {q['kept']} kept after filters "
            f"(rejected: {q['rejected'] or 'none'})"
        )
    if "exemplars" in qs:
        ex = run.json("exemplars.json") or []
        extras.append(
            f"- self-generated exemplars: {len(ex)} (mean zero-shot agreement of candidates "
            f"{qs['exemplars']['mean_confidence']:.2f}); see exemplars.json"
        )
    if extras:
        lines += ["## Self-generated data", ""] + extras + [""]
    guard = run.json("contamination.json")
    if guard:
        lines += [
            "## Contamination guard",
            "",
            f"{guard['overlapping']} of {guard['eval']} eval questions overlap the {guard['pool']} unlabeled questions "
            f"(same split: {guard['same_split']}; policy: {guard['policy']}"
            + (f", {guard['dropped']} dropped from the pool" if "dropped" in guard else "")
            + ").",
            "",
        ]
    if qs:
        lines += ["## Stage wall times", "", "| stage | seconds |", "|---|---|"]
        lines += [
            f"| {k} | {v['seconds']:.0f}"
            + (f" (reused from `{v['reused_from']}`)" if v.get("reused_from") else "")
            + (f" ({v['paths_drawn']} of {v['paths_full']} paths drawn)" if v.get("paths_full") else "")
            + " |"
            for k, v in qs.items()
        ]
        lines += [f"| total | {sum(v['seconds'] for v in qs.values()):.0f} |", ""]
    lines += ["![report](report.png)", ""]
    plot_report(run, student_before or before, rounds, task)
    atomic_write_text(run.path / "report.md", "\n".join(lines))
    return table
