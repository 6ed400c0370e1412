"""Build report.md and report.png from the files in a run directory (stages never call it).

Shows before/after accuracy, then one row per round: held-out accuracy of each round's
model next to the label-free signals a user without labels can watch (agreement of the
model's own votes on fresh questions), and what each round's training set looked like.
"""

from __future__ import annotations

from pathlib import Path

from .io import atomic_write_text
from .rundir import RunDir
from .stats import agreement_stalled, label_correct, paired_gain, probe_agreement, pseudo_label_stats

MODE_NAMES = {
    "greedy_cot": "greedy CoT",
    "sc": "self-consistency maj@m",
    "direct": "direct answer",
    "zeroshot_cot": "zero-shot CoT",
}


def _fmt(s: dict | None, mode: str | None = None) -> str:
    s = (s or {}).get(mode) if mode else s
    if not s:
        return "–"
    f1 = f", F1 {100 * s['f1']:.1f}" if "f1" in s else ""
    return f"{100 * s['accuracy']:.1f} [{100 * s['ci95'][0]:.0f}–{100 * s['ci95'][1]:.0f}]{f1}"


def _modes(*summaries) -> list[str]:
    return [m for m in MODE_NAMES if any(m in (s or {}) for s in summaries)]


def format_table(before: dict | None, after: dict | None, label: str = "before") -> str:
    out = [f"| metric | {label} | after | Δ |", "|---|---|---|---|"]
    for mode in _modes(before, after):
        b, a = (before or {}).get(mode), (after or {}).get(mode)
        delta = f"{100 * (a['accuracy'] - b['accuracy']):+.1f}" if a and b else "–"
        out.append(f"| {MODE_NAMES[mode]} | {_fmt(b)} | {_fmt(a)} | {delta} |")
    return "\n".join(out)


# ---------------------------------------------------------------------------
def collect_rounds(run: RunDir, task, threshold: float) -> list[dict]:
    """One dict per round directory: its data stats, its model's eval and label-free agreement."""
    rounds = []
    for k in run.rounds():
        rd = run.round_dir(k)
        votes = run.rows(rd, "votes")
        rounds.append(
            {
                "k": k,
                "eval": run.summary(rd / "eval"),
                "probe": probe_agreement(rd / "eval"),
                "data": pseudo_label_stats(votes, threshold, task) if votes else None,
                "rows": len(run.rows(rd, "train")),
                "log": run.rows(rd, "train_log"),
                "votes": votes,
                "trained": run.trained(k),
            }
        )
    return rounds


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


def _plots(run: RunDir, before, rounds: list[dict], task) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    models = [(0, before)] + [(r["k"], r["eval"]) for r in rounds if r["trained"] and r["eval"]]
    for mode in _modes(*(s for _, s in models)):
        pts = [(k, s[mode]) for k, s in models if s and mode in s]
        xs = [k for k, _ in pts]
        ax.plot(xs, [100 * s["accuracy"] for _, s in pts], "o-", label=MODE_NAMES[mode])
        ax.fill_between(xs, [100 * s["ci95"][0] for _, s in pts], [100 * s["ci95"][1] for _, s in pts], alpha=0.12)
    agree = [(r["k"] - 1, 100 * r["data"]["mean_confidence"]) for r in rounds if r["data"]]
    if agree:
        ax.plot(
            [k for k, _ in agree],
            [a for _, a in agree],
            ":",
            color="gray",
            marker="s",
            label="agreement, next round's questions",
        )
    probe = [
        (k, 100 * p)
        for k, p in [(0, probe_agreement(run.path / "eval_base"))] + [(r["k"], r["probe"]) for r in rounds]
        if p is not None
    ]
    if probe:
        ax.plot(
            [k for k, _ in probe],
            [a for _, a in probe],
            "k--",
            marker="D",
            label="agreement, eval questions (label-free)",
        )
    ax.set_xlabel("round (0 = base model)")
    ax.set_ylabel("% (accuracy with 95% CI)")
    ax.set_ylim(0, 100)
    ax.set_xticks(range(0, max([k for k, _ in models] + [k for k, _ in agree] + [1]) + 1))
    ax.set_title("held-out accuracy per round")
    ax = axes[1]
    for r in rounds:
        bins: dict[float, list[bool]] = {}
        for v in r["votes"]:
            ok = label_correct(v, task) if v["answer"] is not None else None
            if ok is not None:
                bins.setdefault(round(v["confidence"], 1), []).append(ok)
        xs = sorted(bins)
        if xs:
            ax.plot(xs, [100 * sum(bins[x]) / len(bins[x]) for x in xs], "o-", label=f"round {r['k']}")
    ax.set_xlabel("vote share of the majority answer")
    ax.set_ylabel("pseudo-label correct (%)")
    ax.set_ylim(-5, 105)
    ax.set_title("confidence vs. pseudo-label accuracy")
    ax = axes[2]
    for r in rounds:
        pts = [(h.get("step", i), h["loss"]) for i, h in enumerate(r["log"]) if "loss" in h]
        if pts:
            ax.plot(*zip(*pts), label=f"round {r['k']}")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("fine-tuning loss")
    for a in axes:
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(run.path / "report.png", dpi=100)
    plt.close(fig)


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
        f"Model `{cfg['model']}` on task `{d['task']}`; {d['limit']} unlabeled questions per round, "
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
        lines += paired_section(base_dir, evals, _modes(before, after))
    loop = run.json("loop.json")
    if rounds:
        base_probe = probe_agreement(base_dir)
        lines += (
            ["## Rounds", ""]
            + per_round_tables(student_before or before, base_probe, rounds, _modes(before, after))
            + [""]
        )
        if loop and loop.get("stopped"):
            lines += [f"**Stopped early:** {loop['stopped']}.", ""]
        would = rule_verdict(base_probe, rounds, cfg["loop"]["min_gain"])
        if would:
            lines += [would, ""]
    last = next((r for r in reversed(rounds) if r["rows"]), None)
    if last:
        rows = run.rows(run.round_dir(last["k"]), "train")
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
            + " |"
            for k, v in qs.items()
        ]
        lines += [f"| total | {sum(v['seconds'] for v in qs.values()):.0f} |", ""]
    lines += ["![report](report.png)", ""]
    _plots(run, student_before or before, rounds, task)
    atomic_write_text(run.path / "report.md", "\n".join(lines))
    return table
