"""`lmsi sweep`: the paper's studies over m, temperature, confidence threshold and format mix.

    lmsi sweep -r runs/sweep sample.m=2,4,8 build.threshold=0.5,0.75 [other overrides]

Every grid point is an ordinary run directory under the sweep directory. Work is shared
where the method allows: the base evaluation runs once; one sampling pass at the largest m
serves every smaller m (the first m' of m i.i.d. paths are an m'-path sample), and points
that differ only in threshold or format mix share that pass too. A T value needs its own pass.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from .borrow import share_base_eval, share_sample_pass
from .config import ConfigError, load_config
from .io import atomic_write_text
from .pipeline import Pipeline
from .report import build_report
from .rundir import RunDir
from .stats import pseudo_label_stats
from .train import EmptyTrainingSet

FORMAT_PRESETS = {
    "all": {"fewshot_cot": 1.0, "fewshot_direct": 1.0, "zeroshot_cot": 1.0, "zeroshot_direct": 1.0},
    "cot": {"fewshot_cot": 1.0, "fewshot_direct": 0.0, "zeroshot_cot": 1.0, "zeroshot_direct": 0.0},
    "fewshot_cot": {"fewshot_cot": 1.0, "fewshot_direct": 0.0, "zeroshot_cot": 0.0, "zeroshot_direct": 0.0},
}
SWEEPABLE = ("sample.m", "sample.temperature", "build.threshold", "build.formats")


def parse_axes(specs: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Split 'key=v1,v2' sweep axes from plain overrides ('key=v')."""
    axes, rest = {}, []
    for s in specs:
        key, _, val = s.partition("=")
        if key in SWEEPABLE and ("," in val or key == "build.formats"):
            values = [v.strip() for v in val.split(",") if v.strip()]
            if key == "build.formats":
                bad = [v for v in values if v not in FORMAT_PRESETS]
                if bad:
                    raise ConfigError(f"build.formats sweep takes presets {list(FORMAT_PRESETS)}, not {bad}")
            axes[key] = values
        else:
            rest.append(s)
    if not axes:
        raise ConfigError(f"nothing to sweep: give at least one of {list(SWEEPABLE)} as key=v1,v2")
    return axes, rest


def _point_overrides(point: dict[str, str]) -> list[str]:
    out = []
    for key, val in point.items():
        if key == "build.formats":
            out += [f"build.formats.{f}={w}" for f, w in FORMAT_PRESETS[val].items()]
        else:
            out.append(f"{key}={val}")
    return out


def _name(point: dict[str, str]) -> str:
    return "_".join(f"{k.split('.')[-1]}={v}" for k, v in point.items())


def run_sweep(sweep_dir: Path, specs: list[str], config: Path | None = None, log=print) -> str:
    axes, rest = parse_axes(specs)
    axes = _order_grid(axes)
    grid = [dict(zip(axes, vals)) for vals in itertools.product(*axes.values())]
    sweep_dir = Path(sweep_dir)
    points, first_eval, passes = [], None, {}
    for point in grid:
        # points share one sampling pass, cut to their own m and threshold: it needs every path
        cfg = load_config(config, rest + _point_overrides(point) + ["sample.early_stop=false"])
        cfg.run_dir = str(sweep_dir / _name(point))
        p = Pipeline(cfg, log=log)
        if first_eval:
            share_base_eval(p, first_eval)
        t = cfg.sample.temperature  # one sampling pass per temperature, at the largest m of the sweep
        if t in passes:
            share_sample_pass(p, passes[t])
        log(f"== sweep point {_name(point)}")
        try:
            p.run()
            build_report(p.run_dir)
        except EmptyTrainingSet:
            log(f"   no question reached the threshold: nothing to train at {_name(point)}")
        first_eval = first_eval or p.run_dir
        passes.setdefault(t, p.run_dir)
        points.append((point, p.run_dir))
    return write_sweep_report(sweep_dir, axes, points)


def _order_grid(axes: dict[str, list[str]]) -> dict[str, list[str]]:
    """Largest m first, so each temperature's first point draws the pass the others reuse."""
    if "sample.m" in axes:
        axes = {
            "sample.m": sorted(axes["sample.m"], key=int, reverse=True),
            **{k: v for k, v in axes.items() if k != "sample.m"},
        }
    return axes


def write_sweep_report(sweep_dir: Path, axes: dict, points: list) -> str:
    rows = []
    for point, rd in points:
        run = RunDir(rd)
        votes = run.rows(run.round_dir(1), "votes")
        pl = pseudo_label_stats(votes, run.config["build"]["threshold"], run.task)
        after = run.summary(run.eval_dir(1))  # None: nothing was kept to train on
        rows.append((point, pl, run.summary(run.eval_dir(0)), after))
    modes = [m for m in ("greedy_cot", "sc", "direct") if m in rows[0][2]]
    head = (
        "| " + " | ".join(axes) + " | kept | pseudo-label acc. | " + " | ".join(f"{m} after (Δ)" for m in modes) + " |"
    )
    lines = ["# lmsi sweep", "", head, "|" + "---|" * (len(axes) + 2 + len(modes))]
    for point, pl, before, after in rows:
        acc = "–" if pl["pseudo_label_accuracy"] is None else f"{100 * pl['pseudo_label_accuracy']:.1f}%"
        cells = [
            f"{100 * after[m]['accuracy']:.1f} ({100 * (after[m]['accuracy'] - before[m]['accuracy']):+.1f})"
            if after
            else "no data"
            for m in modes
        ]
        lines.append(
            "| "
            + " | ".join(point[k] for k in axes)
            + f" | {pl['kept']}/{pl['questions']} | {acc} | "
            + " | ".join(cells)
            + " |"
        )
    b = rows[0][2]
    lines += [
        "",
        "Before training: " + ", ".join(f"{m} {100 * b[m]['accuracy']:.1f}" for m in modes) + ".",
        "",
        "![sweep](sweep.png)",
        "",
    ]
    _plot(sweep_dir, axes, rows, modes)
    text = "\n".join(lines)
    atomic_write_text(sweep_dir / "sweep.md", text)
    return text


def _plot(sweep_dir: Path, axes: dict, rows: list, modes: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, plots = plt.subplots(1, len(axes), figsize=(5 * len(axes), 4), squeeze=False)
    for ax, key in zip(plots[0], axes):
        values = list(dict.fromkeys(r[0][key] for r in rows))
        for mode in modes:
            # average over the other axes: the marginal effect of this knob
            # untrained points (nothing kept) count as the base model: that is what the user would get
            acc = [(r[0][key], (r[3] or r[2])[mode]["accuracy"]) for r in rows]
            ys = [sum(a for k, a in acc if k == v) / sum(k == v for k, _ in acc) for v in values]
            ax.plot(range(len(values)), [100 * y for y in ys], "o-", label=f"{mode} after")
        ax.axhline(100 * rows[0][2]["greedy_cot"]["accuracy"], color="gray", ls=":", label="greedy_cot before")
        ax.set_xticks(range(len(values)), values)
        ax.set_xlabel(key)
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(sweep_dir / "sweep.png", dpi=100)
    plt.close(fig)
