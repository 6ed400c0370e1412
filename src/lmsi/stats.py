"""The statistics that read runs: bootstrap and paired CIs, pseudo-label stats, label-free agreement.

Pure functions over rows the stages wrote; the report, compare, sweep, the stop rule and the
evaluation summary all take their numbers from here.
"""

from __future__ import annotations

import math
import random
from functools import cache
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


def paired_gain_over_draws(before: Path | list[Path], afters: list[Path]) -> dict | None:
    """Like paired_gain, with each item's correctness averaged over the training draws first, on
    either side (`before` may list draws too; items missing from one are left out); the bootstrap
    resamples items."""
    befores = before if isinstance(before, list) else [before]
    if not befores or not afters or not all(p.exists() for p in [*befores, *afters]):
        return None
    sides = [[{r["id"]: int(r["correct"]) for r in read_jsonl(p)} for p in ps] for ps in (befores, afters)]
    ids = [i for i in sides[0][0] if all(i in d for side in sides for d in side)]
    if not ids:
        return None
    mean = lambda side, i: sum(d[i] for d in side) / len(side)  # noqa: E731
    d = [mean(sides[1], i) - mean(sides[0], i) for i in ids]
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


@cache
def chance_agreement(k: int | None, m: int) -> float:
    """The agreement of a vote with no knowledge in it: the expected top vote share of m paths
    that each pick uniformly among k possible answers (5 options, 8 paths: 0.40). Open answers
    (k None: numbers, text) have no such chance; their floor is 1/m, every path different."""
    if not k or k < 2 or m < 1:
        return 1 / max(1, m)
    # P(top count <= t) = m!/k^m [x^m] (sum_{j<=t} x^j/j!)^k; E[top] = sum_t P(top > t)
    fact = [math.factorial(j) for j in range(m + 1)]
    expected = 0.0
    for t in range(m):
        poly = [1.0] + [0.0] * m
        for _ in range(k):
            poly = [sum(poly[i - j] / fact[j] for j in range(min(i, t) + 1)) for i in range(m + 1)]
        expected += 1 - poly[m] * fact[m] / k**m
    return expected / m


def vote_signs(votes: list[dict], samples: list[dict], threshold: float, spaces: dict | None = None) -> dict:
    """Label-free signs of a round's vote, read before anything is trained on it: agreement (mean
    top vote share), distinct answers per question, the share of questions passing `threshold`,
    stability (the share of questions whose majority is the same over the even-numbered and the
    odd-numbered paths: a majority that flips between halves is noise, not knowledge), and the
    chance level of agreement (`chance_agreement` of each question's answer space, `spaces`:
    id -> number of possible answers, missing for open answers) next to its floor 1/m."""
    n = max(1, len(votes))
    spaces = spaces or {}
    halves = [(majority(s["answers"][0::2])[0], majority(s["answers"][1::2])[0]) for s in samples]
    drawn = {s["id"]: len(s["answers"]) for s in samples}  # votes written before they recorded m
    ms = [v.get("m") or drawn.get(v["id"], 1) for v in votes]
    return {
        "agreement": sum(v["confidence"] for v in votes) / n,
        "distinct": sum(v["distinct"] for v in votes) / n,
        "passing": sum(v["answer"] is not None and v["confidence"] >= threshold for v in votes) / n,
        "stability": sum(a is not None and a == b for a, b in halves) / max(1, len(halves)),
        "chance": sum(chance_agreement(spaces.get(v["id"]), m) for v, m in zip(votes, ms)) / n,
        "floor": sum(1 / max(1, m) for m in ms) / n,
    }


def guessing_agrees(s: dict) -> bool:
    """Whether random answers would agree above the floor 1/m (a choice or label task)."""
    return s.get("chance", 0.0) > s.get("floor", 0.0)


def describe_signs(s: dict) -> str:
    chance = f" (chance level {s['chance']:.2f})" if guessing_agrees(s) else ""
    return (
        f"agreement {s['agreement']:.2f}{chance}, {s['distinct']:.1f} distinct answers per question, "
        f"{s['passing']:.0%} of questions pass build.threshold, majority stable between path halves on {s['stability']:.0%}"
    )


def agreement_bar(signs: dict, min_agreement: float) -> float:
    """The agreement a vote needs: `min_agreement` for open answers; where guessing among few
    answers already agrees (choice and label tasks), the bar stands as far, in proportion, between
    chance and unanimity as `min_agreement` stands between the floor 1/m and unanimity."""
    if not guessing_agrees(signs) or signs["floor"] >= 1:
        return min_agreement
    chance, floor = signs["chance"], signs["floor"]
    return chance + (1 - chance) * max(0.0, min_agreement - floor) / (1 - floor)


def weak_vote(signs: dict, min_agreement: float) -> str | None:
    """Why a vote is not worth training on, or None. The rule reads agreement only: when the
    majority answer holds less than `agreement_bar` of a question's paths on average, most
    pseudo-labels are guesses (docs/vote-check.md compares it with pseudo-label precision and gains)."""
    if signs["passing"] == 0:
        return f"no question passes build.threshold ({describe_signs(signs)}): nothing to train on"
    bar = agreement_bar(signs, min_agreement)
    if signs["agreement"] < bar:
        lifted = f" lifted above chance to {bar:.2f}" if bar > min_agreement else ""
        return (
            f"weak vote: {describe_signs(signs)}; agreement is below loop.min_agreement={min_agreement}{lifted}, "
            "so training is likely to teach wrong answers"
        )
    return None
