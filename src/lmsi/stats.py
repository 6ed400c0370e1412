"""The statistics that read runs: bootstrap and paired CIs, pseudo-label stats, label-free agreement.

Pure functions over rows the stages wrote; the report, compare, sweep, the stop rule and the
evaluation summary all take their numbers from here.
"""

from __future__ import annotations

import random
from pathlib import Path

from .io import read_jsonl
from .vote import majority


def bootstrap_ci(values: list[float], iters: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap CI of the mean."""
    if not values:
        return 0.0, 0.0
    rng = random.Random(seed)
    n = len(values)
    stats = sorted(sum(rng.choices(values, k=n)) / n for _ in range(iters))
    return stats[int(0.025 * iters)], stats[int(0.975 * iters) - 1]


def paired_gain(before: Path, after: Path) -> dict | None:
    """Per-item change from one eval file's verdicts to another's on the same questions: mean
    difference with a 95% bootstrap CI, and how many items each side won."""
    if not (before.exists() and after.exists()):
        return None
    a = {r["id"]: r["correct"] for r in read_jsonl(before)}
    d = [int(r["correct"]) - int(a[r["id"]]) for r in read_jsonl(after) if r["id"] in a]
    if not d:
        return None
    return {"delta": sum(d) / len(d), "ci95": bootstrap_ci(d), "won": d.count(1), "lost": d.count(-1), "n": len(d)}


def paired_gain_over_draws(before: Path, afters: list[Path]) -> dict | None:
    """Like paired_gain, with each item's correctness after training averaged over the training
    draws first (items missing from a draw are left out); the bootstrap resamples items."""
    if not before.exists() or not afters or not all(a.exists() for a in afters):
        return None
    base = {r["id"]: int(r["correct"]) for r in read_jsonl(before)}
    per_draw = [{r["id"]: int(r["correct"]) for r in read_jsonl(a)} for a in afters]
    ids = [i for i in base if all(i in d for d in per_draw)]
    if not ids:
        return None
    d = [sum(p[i] for p in per_draw) / len(per_draw) - base[i] for i in ids]
    won, lost = sum(x > 0 for x in d), sum(x < 0 for x in d)
    return {"delta": sum(d) / len(d), "ci95": bootstrap_ci(d), "won": won, "lost": lost, "n": len(d)}


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation, min and max of a metric over training draws."""
    n = len(values)
    mean = sum(values) / n
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else 0.0
    return {"mean": mean, "sd": sd, "min": min(values), "max": max(values), "n": n}


def label_correct(v: dict, task) -> bool | None:
    """Whether a vote's pseudo-label matches its gold answer (an archive stores only this verdict)."""
    if "label_correct" in v:
        return v["label_correct"]
    return None if v.get("gold") is None else task.is_correct(v["answer"], v["gold"])


def pseudo_label_stats(votes: list[dict], threshold: float, task) -> dict:
    """How many questions the vote kept at `threshold`, and (gold read as a diagnostic only) how
    many of the kept pseudo-labels are right."""
    kept = [v for v in votes if v["answer"] is not None and v["confidence"] >= threshold]
    verdicts = [c for c in (label_correct(v, task) for v in kept) if c is not None]
    return {
        "questions": len(votes),
        "kept": len(kept),
        "pseudo_label_accuracy": sum(verdicts) / len(verdicts) if verdicts else None,
        "mean_confidence": sum(v["confidence"] for v in votes) / max(1, len(votes)),
        "mean_distinct_answers": sum(v["distinct"] for v in votes) / max(1, len(votes)),
    }


def probe_agreement(eval_dir: Path) -> float | None:
    """Mean vote share of the self-consistency paths on the eval questions: a label-free signal
    measured on the same questions for every model, so it tracks the model, not the questions."""
    path = Path(eval_dir) / "sc.jsonl"
    if not path.exists():
        return None
    rows = read_jsonl(path)
    # over all m planned paths: with early stopping, a lower bound (docs/early-stopping.md)
    return sum(majority(r["answers"], r.get("m"))[1] for r in rows) / max(1, len(rows))


def agreement_stalled(before: float, now: float, min_gain: float) -> bool:
    """The label-free stop rule: agreement did not rise by at least `min_gain`
    (rounded, so float noise between equal agreements cannot decide it)."""
    return round(now - before, 6) < min_gain


def vote_signs(votes: list[dict], samples: list[dict], threshold: float) -> dict:
    """Label-free signs of a round's vote, read before anything is trained on it: agreement (mean
    top vote share), distinct answers per question, the share of questions passing `threshold`,
    and stability (the share of questions whose majority is the same over the even-numbered and
    the odd-numbered paths: a majority that flips between halves is noise, not knowledge)."""
    n = max(1, len(votes))
    halves = [(majority(s["answers"][0::2])[0], majority(s["answers"][1::2])[0]) for s in samples]
    return {
        "agreement": sum(v["confidence"] for v in votes) / n,
        "distinct": sum(v["distinct"] for v in votes) / n,
        "passing": sum(v["answer"] is not None and v["confidence"] >= threshold for v in votes) / n,
        "stability": sum(a is not None and a == b for a, b in halves) / max(1, len(halves)),
    }


def describe_signs(s: dict) -> str:
    return (
        f"agreement {s['agreement']:.2f}, {s['distinct']:.1f} distinct answers per question, "
        f"{s['passing']:.0%} of questions pass build.threshold, majority stable between path halves on {s['stability']:.0%}"
    )


def weak_vote(signs: dict, min_agreement: float) -> str | None:
    """Why a vote is not worth training on, or None. The rule reads agreement only: when the
    majority answer holds less than `min_agreement` of a question's paths on average, most
    pseudo-labels are guesses (docs/vote-check.md compares it with pseudo-label precision and gains)."""
    if signs["passing"] == 0:
        return f"no question passes build.threshold ({describe_signs(signs)}): nothing to train on"
    if signs["agreement"] < min_agreement:
        return (
            f"weak vote: {describe_signs(signs)}; agreement is below loop.min_agreement={min_agreement}, "
            "so training is likely to teach wrong answers"
        )
    return None
