"""Exact early stopping of a question's vote: its m paths are drawn in waves of fixed size, and
drawing stops once no way of filling the undrawn paths can change what the stage needs: the
majority answer (vote.majority's tie rule: equal counts go to the answer seen first) and, for
the sample stage, whether its share of all m paths passes build.threshold.

Each wave has its own seed, from (run seed, question id, wave index), and is one sampler call
for one question; so a wave's text does not depend on how many waves or which other questions
are drawn, and an early-stopped question's paths are the first paths of its full-m draw.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, replace

from .backends import SamplingParams
from .config import RunConfig


def passes(votes: int, m: int, threshold: float) -> bool:
    """Whether `votes` of m paths pass the threshold, as build reads votes.jsonl (share rounded to 4 places)."""
    return round(votes / m, 4) >= threshold


def _lead(answers: list[str | None]):
    counts = Counter(a for a in answers if a is not None)
    first = {a: i for i, a in reversed(list(enumerate(answers))) if a is not None}
    return (max(counts, key=lambda a: (counts[a], -first[a])) if counts else None), counts, first


def decided(answers: list[str | None], m: int, threshold: float | None = None) -> bool:
    """Whether the first len(answers) of m answers fix the full vote's majority answer (and, given
    a threshold, whether its share passes it) for every way the other answers could turn out."""
    rest = m - len(answers)
    if rest <= 0:
        return True
    lead, counts, first = _lead(answers)
    # the worst case for the leader: every undrawn path goes to one rival; on a tie the one seen
    # first wins, and an answer not seen yet is seen after the leader (none seen: anything can win)
    if lead is None or counts[lead] < rest:
        return False
    for a, c in counts.items():
        if a != lead and (c + rest > counts[lead] or (c + rest == counts[lead] and first[a] < first[lead])):
            return False
    return threshold is None or passes(counts[lead], m, threshold) or not passes(counts[lead] + rest, m, threshold)


def settled(answers: list, m: int, threshold: float | None = None, keys: list | None = None, distinct: int = 0) -> bool:
    """`decided`, and, for a question that passes the threshold, `distinct` different keys (the
    build stage's reasoning texts) among its majority paths, so the build stage's first
    `distinct` of them are already drawn: its training rows come out the same as from all m."""
    if len(answers) >= m or not decided(answers, m, threshold):
        return len(answers) >= m
    lead, counts, _ = _lead(answers)
    if not distinct or threshold is None or not passes(counts[lead], m, threshold):
        return True
    return len({k for k, a in zip(keys, answers) if a == lead}) >= distinct


def wave_sizes(m: int, wave: int) -> list[int]:
    """Paths per wave: waves of `wave` paths, the last one shorter if `wave` does not divide m."""
    wave = min(max(1, wave), m)
    return [wave] * (m // wave) + ([m % wave] if m % wave else [])


def stop_point(
    answers: list, wave: int, threshold: float | None = None, keys: list | None = None, distinct: int = 0
) -> int:
    """Replay: how many of a question's m answers (in draw order) the rule draws."""
    drawn, m = 0, len(answers)
    for size in wave_sizes(m, wave):
        drawn += size
        if settled(answers[:drawn], m, threshold, keys and keys[:drawn], distinct):
            break
    return drawn


def wave_seed(seed: int, question_id: str, wave: int) -> int:
    """A wave's sampler seed: fixed by the run seed, the question and the wave, nothing else."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{question_id}:{wave}".encode()).digest()[:4], "big")


@dataclass(frozen=True)
class Waves:
    m: int  # paths per question when none is stopped early
    size: int  # paths per wave
    stop: bool = True  # False: draw every wave (the full-m draw an early-stopped one is a prefix of)
    threshold: float | None = None  # the sample stage's build.threshold; None: the majority answer only
    distinct: int = 0  # the sample stage's build.max_paths (see `settled`)


def draw_waves(
    sampler, prompts: list[str], ids: list[str], params: SamplingParams, waves: Waves, seed: int, extract, key=None
):
    """Each question's paths, wave by wave; `extract(path, i)` reads the answer of a path of
    question i, `key(path)` its reasoning. A wave's paths of a question are seeded by (seed,
    question id, wave) alone. A wave is one call over the open questions when the sampler takes
    per-prompt seeds (a full decode batch), else one call per open question (or one `map` over
    them on a fleet)."""
    paths: list[list[str]] = [[] for _ in prompts]
    answers: list[list] = [[] for _ in prompts]
    open_ = list(range(len(prompts)))
    for w, size in enumerate(wave_sizes(waves.m, waves.size)):
        if not open_:  # every question settled: a call over none would be wasted (or refused)
            break
        seeds = [wave_seed(seed, ids[i], w) for i in open_]
        if getattr(sampler, "prompt_seeds", False):
            outs = [
                [o] for o in sampler.generate([prompts[i] for i in open_], replace(params, n=size, seeds=tuple(seeds)))
            ]
        else:
            jobs = [([prompts[i]], replace(params, n=size, seed=s)) for i, s in zip(open_, seeds)]
            outs = sampler.map(jobs) if hasattr(sampler, "map") else (sampler.generate(*job) for job in jobs)
        for i, (out,) in zip(open_, outs):
            paths[i] += out
            answers[i] += [extract(p, i) for p in out]
        if waves.stop:
            keys = lambda i: [key(p) for p in paths[i]] if key and waves.distinct else None  # noqa: E731
            open_ = [i for i in open_ if not settled(answers[i], waves.m, waves.threshold, keys(i), waves.distinct)]
    return paths


def full_vote_users(cfg: RunConfig, has_eval: bool) -> dict[str, list[str]]:
    """Why a stage must draw all m paths even with sample.early_stop: {"sample": [...], "sc": [...]}."""
    sample, sc = [], []
    if cfg.build.vote == "weighted":
        sample.append("build.vote=weighted weighs every path")
    if cfg.train.weighting == "confidence":
        sample.append("train.weighting=confidence reads each question's full vote share")
    if cfg.train.method == "dpo":
        sample.append("train.method=dpo takes minority paths as rejected answers")
    if cfg.loop.stop and cfg.loop.rounds > 1 and not (has_eval and "sc" in cfg.eval.modes):
        sample.append("loop.stop reads the vote's mean share (no sc evaluation to read)")
    if cfg.loop.stop:
        sc.append("loop.stop reads the mean vote share of the sc paths")
    if cfg.train.draws > 1:
        sc.append("train.draws>1 picks the draw by the mean vote share of the sc paths")
    return {"sample": sample, "sc": sc}
