"""Sample m reasoning paths per unlabeled question and record their extracted answers.

Writes `samples.jsonl` in chunks (append + fsync), so a crash loses at most one chunk and
a rerun continues with the questions not yet written. `path_logprobs` scores sampled paths under
the model that drew them, for weighted votes.
"""

from __future__ import annotations

from pathlib import Path

from .backends import SamplingParams
from .config import SampleConfig
from .earlystop import Waves, draw_waves
from .io import InputError, append_jsonl, read_jsonl, write_jsonl
from .progress import bar
from .tasks import Example, Task


def sample_row(task: Task, q: Example, prompt: str, completions: list[str], m: int) -> dict:
    """One line of samples.jsonl: the question's paths and their extracted answers; `drawn` of
    the `m` planned paths (fewer when early stopping found the vote decided)."""
    return {
        "id": q.id,
        "question": q.question,
        "gold": q.answer,
        "prompt": prompt,
        "completions": completions,
        "answers": [task.extract(c, choices=q.choices) for c in completions],
        "m": m,
        "drawn": len(completions),
        **({"choices": list(q.choices)} if q.choices else {}),
    }  # grpo re-extracts answers with them


def run_sample(
    task: Task,
    sampler,
    questions: list[Example],
    round_dir: Path,
    cfg: SampleConfig,
    seed: int,
    waves: Waves | None = None,
) -> list[dict]:
    """`sampler` is a Sampler, or a RayFleet that spreads the chunks over workers; either way
    chunks are committed in order, each with the seed of its first question's position. With
    `waves`, each question's paths are drawn in waves seeded by (seed, question id, wave) and
    stop once the vote is decided (earlystop.py); a chunk is committed when all its waves are."""
    path = round_dir / "samples.jsonl"
    kept = read_jsonl(path, tolerate_torn_tail=True) if path.exists() else []
    if kept:  # rewrite without a torn tail so appends stay line-aligned
        write_jsonl(path, kept)
    done = {r["id"] for r in kept}
    todo = [(i, q) for i, q in enumerate(questions) if q.id not in done]
    chunk = max(1, cfg.batch_rows // (waves.size if waves else cfg.m))  # one decode batch (a first wave's) per chunk
    parts = [todo[s : s + chunk] for s in range(0, len(todo), chunk)]
    params = SamplingParams(
        n=cfg.m, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens, stop=task.stop
    )
    jobs = []
    for part in parts:
        prompts = [task.prompt(q.question, "fewshot_cot", cfg.shots) for _, q in part]
        jobs.append((prompts, SamplingParams(**{**params.__dict__, "seed": seed + part[0][0]})))
    if waves:
        results = (
            draw_waves(
                sampler, prompts, [q.id for _, q in part], params, waves, seed,
                lambda c, i, part=part: task.extract(c, choices=part[i][1].choices), task.reasoning_of,
            )
            for part, (prompts, _) in zip(parts, jobs)
        )  # fmt: skip
    else:
        results = sampler.map(jobs) if hasattr(sampler, "map") else (sampler.generate(*job) for job in jobs)
    with bar("sample", total=len(questions), completed=len(done)) as tracker:
        for part, (prompts, _), outs in zip(parts, jobs, results):
            append_jsonl(path, [sample_row(task, q, p, o, cfg.m) for (_, q), p, o in zip(part, prompts, outs)])
            tracker.advance(len(part))
    return read_jsonl(path)


def path_logprobs(make_sampler, rows: list[dict], path) -> dict:
    """Each sampled path's mean token log-prob under the model that sampled it, appended to
    `path` one question at a time, so an interrupted run scores only the rest. `make_sampler()`
    is called only when some path is still unscored (loading a model is not free)."""
    done = {r["id"]: r["logprobs"] for r in read_jsonl(path, tolerate_torn_tail=True)} if path.exists() else {}
    if all(r["id"] in done for r in rows):
        return done
    sampler = make_sampler()
    if not hasattr(sampler, "score"):
        raise InputError(
            f"weighted votes need path log-probs, which backend {sampler.name!r} does not give; use backend=hf"
        )
    with bar("score paths", total=len(rows), completed=len(done)) as tracker:
        for r in rows:
            if r["id"] not in done:
                done[r["id"]] = sampler.score(r["prompt"], r["paths"])
                append_jsonl(path, [{"id": r["id"], "logprobs": done[r["id"]]}])
                tracker.advance(1)
    return done
