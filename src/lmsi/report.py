"""Build report.md and PNG plots from the files in a run directory (stages never call it)."""

from __future__ import annotations

import json
from pathlib import Path

from .io import atomic_write_text, read_jsonl

MODE_NAMES = {"greedy_cot": "greedy CoT", "sc": "self-consistency maj@m", "direct": "direct answer",
              "zeroshot_cot": "zero-shot CoT"}


def task_from_config(cfg: dict):
    from .tasks import get_task

    d = cfg.get("data", {})
    name = d.get("task", "arith")
    if name.startswith(("file:", "hf:")):
        return get_task(name, **{k: d[k] for k in ("question_field", "answer_field", "choices_field", "answer_type") if k in d})
    return get_task(name)


def _load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def pseudo_label_stats(votes: list[dict], threshold: float, task) -> dict:
    kept = [v for v in votes if v["answer"] is not None and v["confidence"] >= threshold]
    with_gold = [v for v in kept if v.get("gold") is not None]
    right = sum(task.is_correct(v["answer"], v["gold"]) for v in with_gold)
    return {
        "questions": len(votes), "kept": len(kept),
        "pseudo_label_accuracy": right / len(with_gold) if with_gold else None,
        "mean_confidence": sum(v["confidence"] for v in votes) / max(1, len(votes)),
        "mean_distinct_answers": sum(v["distinct"] for v in votes) / max(1, len(votes)),
    }


def table_rows(before: dict | None, after: dict | None) -> list[tuple]:
    rows = []
    for mode in MODE_NAMES:
        b = (before or {}).get(mode)
        a = (after or {}).get(mode)
        if not b and not a:
            continue
        rows.append((mode, b, a))
    return rows


def _fmt(s: dict | None) -> str:
    if not s:
        return "–"
    return f"{100 * s['accuracy']:.1f} [{100 * s['ci95'][0]:.0f}–{100 * s['ci95'][1]:.0f}]"


def format_table(before: dict | None, after: dict | None) -> str:
    out = ["| metric | before | after | Δ |", "|---|---|---|---|"]
    for mode, b, a in table_rows(before, after):
        delta = f"{100 * (a['accuracy'] - b['accuracy']):+.1f}" if a and b else "–"
        out.append(f"| {MODE_NAMES[mode]} | {_fmt(b)} | {_fmt(a)} | {delta} |")
    return "\n".join(out)


def _plots(run_dir: Path, before, after, votes, log, task) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    modes = [m for m, _, _ in table_rows(before, after)]
    for k, (label, summ) in enumerate((("before", before), ("after", after))):
        if not summ:
            continue
        accs = [100 * summ[m]["accuracy"] if m in summ else 0 for m in modes]
        err = [[100 * (summ[m]["accuracy"] - summ[m]["ci95"][0]) if m in summ else 0 for m in modes],
               [100 * (summ[m]["ci95"][1] - summ[m]["accuracy"]) if m in summ else 0 for m in modes]]
        ax.bar([i + 0.4 * k for i in range(len(modes))], accs, 0.4, yerr=err, capsize=3, label=label)
    ax.set_xticks([i + 0.2 for i in range(len(modes))], [MODE_NAMES[m] for m in modes], fontsize=8)
    ax.set_ylabel("accuracy (%) with 95% CI")
    ax.set_ylim(0, 100)
    ax.set_title("held-out accuracy")
    ax.legend()
    ax = axes[1]
    if votes:
        bins = {}
        for v in votes:
            if v["answer"] is None or v.get("gold") is None:
                continue
            b = round(v["confidence"], 1)
            bins.setdefault(b, []).append(task.is_correct(v["answer"], v["gold"]))
        xs = sorted(bins)
        ax.plot(xs, [100 * sum(bins[x]) / len(bins[x]) for x in xs], "o-")
        for x in xs:
            ax.annotate(f"n={len(bins[x])}", (x, 100 * sum(bins[x]) / len(bins[x])), fontsize=7)
    ax.set_xlabel("vote share of the majority answer")
    ax.set_ylabel("pseudo-label correct (%)")
    ax.set_ylim(-5, 105)
    ax.set_title("confidence vs. pseudo-label accuracy")
    ax = axes[2]
    if log:
        ax.plot([h.get("step", i) for i, h in enumerate(log) if "loss" in h], [h["loss"] for h in log if "loss" in h])
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("fine-tuning loss")
    fig.tight_layout()
    fig.savefig(run_dir / "report.png", dpi=100)
    plt.close(fig)
    made.append("report.png")
    return made


def _format_counts(rows: list[dict]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["format"]] = counts.get(r["format"], 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


def _training_set_line(rd: Path, method: str, train_rows: list[dict]) -> str:
    if method == "sft":
        return f"- training rows: {len(train_rows)} ({_format_counts(train_rows)})"
    from .build import BUILD_FILES

    path = rd / BUILD_FILES[method]
    n = len(read_jsonl(path)) if path.exists() else 0
    what = {"dpo": "preference pairs (majority vs minority path)", "grpo": "prompts (reward: agree with the group majority)"}
    return f"- train.method={method}: {n} {what[method]}"


def build_report(run_dir: Path) -> str:
    """Write report.md (+ report.png) and return the before/after table."""
    run_dir = Path(run_dir)
    cfg = _load(run_dir / "config.json") or {}
    before = _load(run_dir / "eval_base" / "summary.json")
    rd = run_dir / "round_01"
    after = _load(rd / "eval" / "summary.json")
    votes = read_jsonl(rd / "votes.jsonl") if (rd / "votes.jsonl").exists() else []
    log = read_jsonl(rd / "train_log.jsonl") if (rd / "train_log.jsonl").exists() else []
    train_rows = read_jsonl(rd / "train.jsonl") if (rd / "train.jsonl").exists() else []
    manifest = _load(run_dir / "manifest.json") or {"stages": {}}
    threshold = cfg.get("build", {}).get("threshold", 0.0)
    task = task_from_config(cfg)
    pl = pseudo_label_stats(votes, threshold, task) if votes else None
    guard = _load(run_dir / "contamination.json")
    table = format_table(before, after)
    lines = [f"# lmsi report: {run_dir.name}", "",
             f"Model `{cfg.get('model')}` on task `{cfg.get('data', {}).get('task')}`; "
             f"{cfg.get('data', {}).get('limit')} unlabeled questions, m={cfg.get('sample', {}).get('m')}, "
             f"T={cfg.get('sample', {}).get('temperature')}, threshold={threshold}.", "",
             "## Held-out accuracy (%, 95% bootstrap CI)", "", table, ""]
    if before:
        n = next(iter(v for v in before.values() if isinstance(v, dict) and "n" in v))["n"]
        lines += [f"n = {n} held-out questions ({cfg.get('eval', {}).get('split')} split).", ""]
    if pl:
        acc = "n/a (no gold)" if pl["pseudo_label_accuracy"] is None else f"{100 * pl['pseudo_label_accuracy']:.1f}%"
        lines += ["## Self-training set", "",
                  f"- questions sampled: {pl['questions']}; kept (confidence ≥ {threshold}): {pl['kept']}",
                  f"- pseudo-label accuracy of kept questions: {acc} (gold used only for this diagnostic)",
                  f"- mean confidence: {pl['mean_confidence']:.2f}; mean distinct answers per question: {pl['mean_distinct_answers']:.2f}",
                  _training_set_line(rd, cfg.get("train", {}).get("method", "sft"), train_rows),
                  ""]
    if manifest["stages"]:
        lines += ["## Stage wall times", "", "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {v['seconds']:.0f} |" for k, v in manifest["stages"].items()]
        lines += [f"| total | {sum(v['seconds'] for v in manifest['stages'].values()):.0f} |", ""]
    lines += ["![report](report.png)", ""]
    if guard:
        lines += ["## Contamination guard", "",
                  f"{guard['overlapping']} of {guard['eval']} eval questions overlap the {guard['pool']} unlabeled questions "
                  f"(same split: {guard['same_split']}; policy: {guard['policy']}"
                  + (f", {guard['dropped']} dropped from the pool" if "dropped" in guard else "") + ").", ""]
    _plots(run_dir, before, after, votes, log, task)
    atomic_write_text(run_dir / "report.md", "\n".join(lines))
    return table
