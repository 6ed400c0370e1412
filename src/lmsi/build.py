"""Build the self-training set from the vote, in the shape train.method needs.

  sft   train.jsonl:   confident questions' majority paths in four mixed formats (the paper)
  dpo   pairs.jsonl:   (majority path, minority path) pairs of confident questions
  grpo  prompts.jsonl: few-shot CoT prompts of the unlabeled questions with their sampled answers

Gold answers are never read here: only the vote's pseudo-label.
"""

from __future__ import annotations

import random
from pathlib import Path

from .config import BuildConfig
from .io import read_jsonl, write_jsonl
from .tasks import FORMATS, Task


def _weighted_cycle(weights: dict[str, float]):
    """Smooth weighted round-robin: a balanced, deterministic format mix even for few rows
    (random draws left whole formats out of a 16-row set)."""
    credit = {f: 0.0 for f in weights if weights[f] > 0}
    total = sum(weights[f] for f in credit)
    while True:
        for f in credit:
            credit[f] += weights[f]
        best = max(credit, key=credit.get)
        credit[best] -= total
        yield best


def build_rows(
    task: Task, samples: list[dict], votes: list[dict], cfg: BuildConfig, shots: int, seed: int
) -> list[dict]:
    by_id = {s["id"]: s for s in samples}
    kept = []  # (vote, question, reasoning) for each distinct majority path of a confident question
    for v in votes:
        if v["answer"] is None or v["confidence"] < cfg.threshold:
            continue
        s = by_id[v["id"]]
        paths = [c for c, a in zip(s["completions"], s["answers"]) if a == v["answer"]]
        # distinct reasoning only: duplicated paths teach nothing new
        for reasoning in list(dict.fromkeys(task.reasoning_of(c) for c in paths))[: cfg.max_paths]:
            kept.append((v, s["question"], reasoning))
    random.Random(seed).shuffle(kept)
    if cfg.max_rows:
        kept = kept[: cfg.max_rows]
    # formats are assigned after the cap so the mix stays balanced in the rows actually trained on
    formats = _weighted_cycle({f: cfg.formats.get(f, 0.0) for f in FORMATS})
    rows = []
    for v, question, reasoning in kept:
        fmt = next(formats)
        rows.append(
            {
                "id": v["id"],
                "format": fmt,
                "confidence": v["confidence"],
                "prompt": task.prompt(question, fmt, shots),
                "completion": task.target(reasoning, v["answer"], fmt),
            }
        )
    return rows


def build_pairs(
    task: Task, samples: list[dict], votes: list[dict], cfg: BuildConfig, shots: int, seed: int
) -> list[dict]:
    """Preference pairs for DPO: chosen = a majority-answer path, rejected = a path of the same
    question whose answer differs (or, with cfg.reject_unextractable, that states none).

    Both sides are rewritten the way SFT targets are ("reasoning. The answer is X."), so a pair
    differs in reasoning and answer, not in trailing text the sampler happened to emit."""
    by_id = {s["id"]: s for s in samples}
    pairs = []
    for v in votes:
        if v["answer"] is None or v["confidence"] < cfg.threshold:
            continue
        s = by_id[v["id"]]
        chosen, wrong, silent = {}, {}, {}  # dicts as ordered sets: distinct targets in sampling order
        for c, a in zip(s["completions"], s["answers"]):
            if a == v["answer"]:
                chosen[task.target(task.reasoning_of(c), a, "fewshot_cot")] = a
            elif a is not None:
                wrong[task.target(task.reasoning_of(c), a, "fewshot_cot")] = a
            elif cfg.reject_unextractable and c.strip():
                silent[" " + c.strip()] = None  # kept verbatim: there is no answer to rewrite it around
        rejected = list(wrong.items()) + list(silent.items())  # a wrong answer is the clearer contrast: first
        if not rejected:
            continue  # every path agreed: no preference to learn
        prompt = task.prompt(s["question"], "fewshot_cot", shots)
        good = list(chosen)
        for k in range(min(cfg.pairs_per_question, max(len(good), len(rejected)))):
            bad, bad_answer = rejected[k % len(rejected)]
            pairs.append(
                {
                    "id": v["id"],
                    "confidence": v["confidence"],
                    "answer": v["answer"],
                    "rejected_answer": bad_answer,
                    "prompt": prompt,
                    "chosen": good[k % len(good)],
                    "rejected": bad,
                }
            )
    random.Random(seed).shuffle(pairs)
    return pairs[: cfg.max_rows] if cfg.max_rows else pairs


def build_prompts(task: Task, samples: list[dict], cfg: BuildConfig, shots: int, seed: int) -> list[dict]:
    """GRPO prompts: every sampled question with its sampled answers (the train stage's votes,
    topped up there when sample.m < train.grpo_votes, and thresholded there) and paths (whose
    lengths set the auto completion cap)."""
    rows = [
        {
            "id": s["id"],
            "prompt": task.prompt(s["question"], "fewshot_cot", shots),
            "choices": list(s.get("choices") or ()),
            "answers": s["answers"],
            "paths": s["completions"],
        }
        for s in samples
    ]
    random.Random(seed).shuffle(rows)
    return rows[: cfg.max_rows] if cfg.max_rows else rows


BUILD_FILES = {"sft": "train.jsonl", "dpo": "pairs.jsonl", "grpo": "prompts.jsonl"}


def run_build(
    task: Task,
    round_dir: Path,
    cfg: BuildConfig,
    shots: int,
    seed: int,
    method: str = "sft",
    out_dir: Path | None = None,
) -> list[dict]:
    """Write the training file for `method` (BUILD_FILES) into out_dir (default: the round's
    folder; a training draw has its own) and return its rows."""
    samples = read_jsonl(round_dir / "samples.jsonl")
    if method == "grpo":
        rows = build_prompts(task, samples, cfg, shots, seed)
    else:
        build = build_pairs if method == "dpo" else build_rows
        rows = build(task, samples, read_jsonl(round_dir / "votes.jsonl"), cfg, shots, seed)
    write_jsonl((out_dir or round_dir) / BUILD_FILES[method], rows)
    return rows
