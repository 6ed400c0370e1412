"""Compare finished run directories side by side (one column per run) as a markdown table.

    lmsi compare runs/sft runs/sft_weighted runs/dpo runs/grpo --out compare.md

Reads only files the stages wrote (the saved config, manifest.json, eval_base/, the trained round's
eval/, votes.jsonl, the build file and train_log.jsonl); like the report, it never runs a stage.
"""

from __future__ import annotations

import json
from pathlib import Path

from .build import BUILD_FILES
from .config import diff_configs
from .evaluate import MODE_NAMES
from .io import InputError, read_jsonl
from .report import cell_paired
from .rundir import RunDir
from .stats import paired_gain, paired_gain_over_draws, pseudo_label_stats, spread
from .train.grpo import INFO as GRPO_INFO


def trained_round(run: RunDir, k: int = 0) -> int:
    """k, or (k=0) the last round whose tuned model was evaluated (1 if none yet)."""
    if k:
        return k
    done = run.evaluated_rounds()
    return done[-1] if done else 1


def _acc(s: dict | None) -> str:
    return f"{100 * s['accuracy']:.1f} [{100 * s['ci95'][0]:.0f}–{100 * s['ci95'][1]:.0f}]" if s else "–"


def _train_items(build_file: Path, grpo_info: Path) -> int | None:
    """Rows, pairs or prompts trained on: GRPO leaves ambiguous prompts of its build file out."""
    if grpo_info.exists():
        info = json.loads(grpo_info.read_text())
        return info["prompts"] - info["left_out"]
    return len(read_jsonl(build_file)) if build_file.exists() else None


def _method(cfg: dict) -> str:
    t = cfg.get("train", {})
    m = t.get("method", "sft")
    detail = {
        "sft": "confidence-weighted" if t.get("weighting") == "confidence" else "",
        "dpo": f"β={t.get('dpo_beta')}",
        # runs from before train.grpo_votes rewarded the majority of the trained group itself
        "grpo": f"G={t.get('grpo_generations')}, "
        + (f"N={t['grpo_votes']}" if "grpo_votes" in t else "group majority"),
    }.get(m, "")
    return f"{m} ({detail}, {t.get('adapter', 'lora')})" if detail else f"{m} ({t.get('adapter', 'lora')})"


def run_summary(run_dir: Path, k: int = 0) -> dict:
    """The numbers one column of the comparison shows, read from one run directory at round k
    (0: its last evaluated round)."""
    run = RunDir(run_dir)
    cfg = run.config
    if k and k not in run.evaluated_rounds():
        names = [run.round_dir(j).name for j in run.evaluated_rounds()]
        raise InputError(f"{run.path}: round {k} has no evaluation (rounds evaluated: {names})")
    k = trained_round(run, k)
    rd, base = run.draw_dir(k, run.chosen_draw(k)), run.path / "eval_base"  # the draw the run went on with
    method = cfg["train"]["method"]
    stages = run.stages
    before, after = run.summary(base), run.summary(rd / "eval")
    votes = run.rows(run.round_dir(k), "votes")
    build_file = rd / BUILD_FILES.get(method, "train.jsonl")
    log = run.rows(rd, "train_log")
    train_stage = stages.get(f"{rd.relative_to(run.path).as_posix()}/train")
    draws = [run.summary(run.draw_dir(k, d) / "eval") for d in run.draws(k)]
    greedy = [s["greedy_cot"]["accuracy"] for s in draws if "greedy_cot" in s]
    return {
        "name": run.path.name,
        "round": k,
        "config": cfg,
        "method": _method(run.raw_config() or cfg),  # as saved: a default must not stand in for an old run
        "modes": {m: ((before or {}).get(m), (after or {}).get(m)) for m in MODE_NAMES},
        "paired": {m: paired_gain(base / f"{m}.jsonl", rd / "eval" / f"{m}.jsonl") for m in MODE_NAMES},
        "transfer": paired_gain(base / "sc.jsonl", rd / "eval" / "greedy_cot.jsonl"),
        "greedy_file": rd / "eval" / "greedy_cot.jsonl",
        "pseudo": pseudo_label_stats(votes, cfg["build"]["threshold"], run.task) if votes else None,
        "train_items": _train_items(build_file, rd / GRPO_INFO),
        "item_kind": {"sft": "rows", "dpo": "pairs", "grpo": "prompts"}.get(method, "rows"),
        "steps": max((h.get("step", 0) for h in log), default=None),
        "train_seconds": train_stage["seconds"] if train_stage else None,
        "total_seconds": run.seconds() if stages else None,
        "draws": spread(greedy) if greedy else None,
        "draw_files": (files := [run.draw_dir(k, d) / "eval" / "greedy_cot.jsonl" for d in run.draws(k)]),
        "draw_gain": paired_gain_over_draws(base / "greedy_cot.jsonl", files),
    }


def _cell_mode(pair) -> str:
    b, a = pair
    if not b and not a:
        return "–"
    delta = f" ({100 * (a['accuracy'] - b['accuracy']):+.1f})" if a and b else ""
    return f"{_acc(b)} → {_acc(a)}{delta}"


def _cell_pseudo(p: dict | None) -> str:
    if not p:
        return "–"
    acc = "n/a" if p["pseudo_label_accuracy"] is None else f"{100 * p['pseudo_label_accuracy']:.1f}%"
    return f"{acc} ({p['kept']}/{p['questions']} kept)"


def _cell_draws(s: dict | None) -> str:
    return "–" if not s else f"{100 * s['mean']:.1f} ± {100 * s['sd']:.1f} ({s['n']})"


def _secs(x: float | None) -> str:
    return "–" if x is None else f"{x:.0f}"


def format_comparison(runs: list[dict]) -> str:
    shown = [m for m in MODE_NAMES if any(r["modes"][m] != (None, None) for r in runs)]
    rows = [("method", [r["method"] for r in runs]), ("round", [str(r["round"]) for r in runs])]
    for m in shown:
        rows.append((f"{MODE_NAMES[m]}: before → after (Δ)", [_cell_mode(r["modes"][m]) for r in runs]))
        rows.append((f"{MODE_NAMES[m]}: paired Δ per item [95% CI]", [cell_paired(r["paired"][m]) for r in runs]))
    if any(r["transfer"] for r in runs):  # the paper's transfer: greedy after reaches self-consistency before
        rows.append(("greedy CoT after vs self-consistency before, paired", [cell_paired(r["transfer"]) for r in runs]))
    if len(runs) > 1:  # variants on one eval set: each against the first column, item by item
        rows.append(
            (
                f"greedy CoT vs `{runs[0]['name']}`, paired",
                ["–"] + [cell_paired(paired_gain(runs[0]["greedy_file"], r["greedy_file"])) for r in runs[1:]],
            )
        )
    if any(r["draws"] and r["draws"]["n"] > 1 for r in runs):  # several training draws: rank by their mean
        means = [r["draws"]["mean"] if r["draws"] else -1.0 for r in runs]
        order = sorted(range(len(runs)), key=lambda i: -means[i])
        rows.append(("greedy CoT over training draws: mean ± sd (draws)", [_cell_draws(r["draws"]) for r in runs]))
        rows.append(("greedy CoT paired Δ, averaged over draws", [cell_paired(r["draw_gain"]) for r in runs]))
        rows.append(("rank by the draws' mean greedy CoT", [str(order.index(i) + 1) for i in range(len(runs))]))
        rows.append(
            (
                f"greedy CoT vs `{runs[0]['name']}`, paired, each item averaged over each run's draws",
                ["–"] + [cell_paired(paired_gain_over_draws(runs[0]["draw_files"], r["draw_files"])) for r in runs[1:]],
            )
        )
    rows += [
        ("pseudo-label accuracy of kept questions", [_cell_pseudo(r["pseudo"]) for r in runs]),
        ("training set", ["–" if r["train_items"] is None else f"{r['train_items']} {r['item_kind']}" for r in runs]),
        ("optimizer steps", ["–" if r["steps"] is None else str(r["steps"]) for r in runs]),
        ("train wall time (s)", [_secs(r["train_seconds"]) for r in runs]),
        ("total wall time (s)", [_secs(r["total_seconds"]) for r in runs]),
    ]
    lines = ["| | " + " | ".join(f"`{r['name']}`" for r in runs) + " |", "|---" * (len(runs) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines)


def _config_differences(runs: list[dict]) -> list[str]:
    """Keys (other than run_dir) where a run's config differs from the first run's."""
    first = runs[0]["config"]
    out = []
    for r in runs[1:]:
        for d in diff_configs(first, r["config"]):
            if not d.startswith("run_dir:"):
                out.append(f"`{r['name']}` vs `{runs[0]['name']}`: {d}")
    return out


def compare_runs(run_dirs: list[Path], k: int = 0, title: str = "# lmsi comparison") -> str:
    """The comparison as markdown: the table, then the config keys the runs differ in. Each run is
    read at round k (0: its last evaluated round)."""
    runs = [run_summary(Path(d), k) for d in run_dirs]
    lines = [
        title,
        "",
        "Held-out accuracy in % with 95% bootstrap CI, base model → after the round shown. Pseudo-label "
        "accuracy uses gold answers as a diagnostic only. Training set: SFT rows, DPO pairs or GRPO prompts.",
        "",
        format_comparison(runs),
        "",
    ]
    diffs = _config_differences(runs)
    if diffs:
        lines += [f"{title.split(' ')[0]}# Config differences", ""] + [f"- {d}" for d in diffs] + [""]
    return "\n".join(lines)
