"""The paper's section-5 extensions that need no hand-written data.

Self-generated questions: few-shot *question* writing from seed questions (their text
only), then filters: length, a question mark, a number for numeric tasks, no duplicates of
each other, of the seeds or of any eval split. Whether a question is answerable is left to
the vote: only questions whose paths agree reach the training set.

Self-generated exemplars: zero-shot CoT ("Let's think step by step") on a few unlabeled
questions, then "Therefore, the answer is" to read each path's answer; the questions whose
paths agree most become the few-shot exemplars, with a majority path as the reasoning.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from .backends import Sampler, SamplingParams
from .config import RunConfig, SelfGenConfig
from .io import InputError, write_json, write_jsonl
from .tasks import Example, Exemplar, Task
from .tasks.overlap import find_overlap
from .vote import majority


def question_prompt(seeds: list[str]) -> str:
    return "".join(f"Question: {s.strip()}\n\n" for s in seeds) + "Question:"


def _clean(text: str) -> str:
    return " ".join(text.strip().split())


def keep_question(text: str, numeric: bool) -> str | None:
    """Why a generated question is rejected, or None if it passes the filters."""
    words = len(text.split())
    if words < 6:
        return "too short"
    if words > 150:
        return "too long"
    if "?" not in text:
        return "no question mark"
    if numeric and not re.search(r"\d", text):
        return "no number"
    return None


def generate_questions(
    task: Task,
    sampler: Sampler,
    seeds: list[Example],
    avoid: list[Example],
    n: int,
    per_prompt: int,
    temperature: float,
    seed: int,
) -> tuple[list[Example], dict]:
    """Draw `n` candidate questions and keep those that pass the filters; stats say why others went."""
    rng = random.Random(seed)
    per_call = 4  # questions drawn per prompt: each prompt shows a different seed mix
    prompts = [
        question_prompt([s.question for s in rng.sample(seeds, min(per_prompt, len(seeds)))])
        for _ in range(-(-n // per_call))
    ]
    params = SamplingParams(
        n=per_call,
        temperature=temperature,
        max_new_tokens=160,
        seed=seed,
        stop=("\n\nQuestion:", "\nQuestion:", "\n\n", "\nAnswer", "\nA:"),
    )
    texts = [_clean(t) for outs in sampler.generate(prompts, params) for t in outs][:n]
    reasons: dict[str, int] = {}
    kept: list[Example] = []
    seen: set[str] = set()
    for i, text in enumerate(texts):
        why = keep_question(text, task.answer_type == "number")
        key = re.sub(r"\W+", " ", text.lower()).strip()
        if why is None and key in seen:
            why = "duplicate"
        cand = Example(f"self-{i}", text)
        if why is None and find_overlap(kept + seeds, [cand]):
            why = "near-duplicate of a seed or another question"
        if why is None and find_overlap(avoid, [cand]):
            why = "near-duplicate of an eval question"
        if why:
            reasons[why] = reasons.get(why, 0) + 1
            continue
        seen.add(key)
        kept.append(cand)
    return kept, {"generated": len(texts), "kept": len(kept), "rejected": reasons}


def make_exemplars(
    task: Task, sampler: Sampler, candidates: list[Example], m: int, k: int, max_new_tokens: int, seed: int
) -> tuple[tuple[Exemplar, ...], list[dict]]:
    """The k candidates whose zero-shot CoT paths agree most, as exemplars (with the vote rows)."""
    prompts = [task.prompt(q.question, "zeroshot_cot", 0) for q in candidates]
    params = SamplingParams(n=m, temperature=0.7, max_new_tokens=max_new_tokens, stop=task.stop, seed=seed)
    paths = sampler.generate(prompts, params)
    # zero-shot reasoning rarely states an answer in our format: ask for it, as zero-shot CoT does
    follow = [p + " " + r.strip() + " Therefore, the answer is" for p, rs in zip(prompts, paths) for r in rs]
    answers = sampler.generate(
        follow, SamplingParams(n=1, temperature=0.0, max_new_tokens=16, stop=task.stop + ("\n",), seed=seed)
    )
    rows = []
    for j, (q, rs) in enumerate(zip(candidates, paths)):
        got = [task.extract(a[0], "fewshot_direct", q.choices) for a in answers[j * m : (j + 1) * m]]
        answer, conf, _ = majority(got)
        reasoning = next((_clean(r) for r, a in zip(rs, got) if a == answer and r.strip()), "")
        rows.append(
            {
                "id": q.id,
                "question": q.question,
                "answer": answer,
                "confidence": conf,
                "reasoning": reasoning,
                "gold": q.answer,
            }
        )
    usable = [r for r in rows if r["answer"] is not None and r["reasoning"]]
    usable.sort(key=lambda r: -r["confidence"])  # stable: ties keep pool order
    return tuple(Exemplar(r["question"], r["reasoning"], r["answer"]) for r in usable[:k]), rows


# ---------------------------------------------------------------------------
# the stages: each writes its files into the run directory and returns the manifest's info
def run_exemplars(task: Task, sampler: Sampler, candidates: list[Example], cfg: RunConfig, run_dir: Path) -> dict:
    """exemplars.json (and exemplar_votes.jsonl) from the most agreed-on zero-shot answers."""
    s = cfg.sample
    shots = max(s.shots, cfg.build.shots)
    exemplars, rows = make_exemplars(
        task, sampler, candidates, cfg.selfgen.exemplar_m, shots, s.max_new_tokens, cfg.seed
    )
    if len(exemplars) < shots:
        raise InputError(
            f"self-generated exemplars: {len(exemplars)} usable of the {shots} shots needed, from "
            f"{len(candidates)} candidate questions; give more unlabeled questions "
            "or raise selfgen.exemplar_pool / sample.max_new_tokens"
        )
    write_jsonl(run_dir / "exemplar_votes.jsonl", rows)
    write_json(run_dir / "exemplars.json", [e.__dict__ for e in exemplars])
    return {"exemplars": len(exemplars), "mean_confidence": sum(r["confidence"] for r in rows) / len(rows)}


def run_questions(
    task: Task, sampler: Sampler, seeds: list[Example], avoid: list[Example], g: SelfGenConfig, seed: int, run_dir: Path
) -> dict:
    """questions_self.jsonl: the model's own unlabeled questions, written in the style of `seeds`."""
    kept, stats = generate_questions(task, sampler, seeds, avoid, g.generate, g.per_prompt, g.temperature, seed)
    if not kept:
        raise InputError(f"self-generated questions: none passed the filters ({stats['rejected']})")
    write_jsonl(run_dir / "questions_self.jsonl", [q.__dict__ for q in kept])
    return stats
