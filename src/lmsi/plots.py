"""report.png: held-out accuracy per round with the label-free agreements, confidence against
pseudo-label accuracy, and the training loss."""

from __future__ import annotations

from .evaluate import MODE_NAMES
from .rundir import RunDir
from .stats import label_correct, probe_agreement


def modes_in(*summaries) -> list[str]:
    """The eval modes any of these summaries holds, in the usual order."""
    return [m for m in MODE_NAMES if any(m in (s or {}) for s in summaries)]


def plot_report(run: RunDir, before, rounds: list[dict], task) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    models = [(0, before)] + [(r["k"], r["eval"]) for r in rounds if r["trained"] and r["eval"]]
    for mode in modes_in(*(s for _, s in models)):
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


def plot_grpo_steps(run: RunDir, rounds: list[dict]) -> None:
    """report_grpo.png: per GRPO step the reward, the probe's agreement, the share of all-equal
    groups (no advantage) and the mean completion length (right axis), one column per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r for r in rounds if r["grpo_steps"]]
    fig, axes = plt.subplots(1, len(rounds), figsize=(6 * len(rounds), 4), squeeze=False)
    for ax, r in zip(axes[0], rounds):
        steps = r["grpo_steps"]
        for key, label, style in (("reward", "reward", "o-"), ("all_equal", "all-equal groups", "s:")):
            pts = [(s["step"], s[key]) for s in steps if s.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), style, ms=3, label=label)
        probe = [(s["step"], s["agreement"]) for s in steps if "agreement" in s]
        base = (r["grpo"] or {}).get("agreement_before")
        probe = ([(0, base)] if base is not None else []) + probe
        if probe:
            ax.plot(*zip(*probe), "kD--", label="agreement, eval questions")
        ax.set_xlabel("step")
        ax.set_ylabel("reward / share")
        ax.set_title(f"GRPO, round {r['k']}")
        lengths = [(s["step"], s["completion_length"]) for s in steps if s.get("completion_length") is not None]
        if lengths:
            twin = ax.twinx()
            twin.plot(*zip(*lengths), color="gray", alpha=0.6, label="completion length")
            twin.set_ylabel("mean completion length (tokens)")
            twin.legend(fontsize=7, loc="lower right")
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(run.path / "report_grpo.png", dpi=100)
    plt.close(fig)
