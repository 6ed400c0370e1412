"""Evaluate a model on a labeled held-out split.

Modes: greedy_cot (few-shot CoT, greedy), sc (self-consistency maj@m over sampled few-shot CoT
paths), direct (few-shot, answer only), zeroshot_cot ("Let's think step by step", greedy).

Writes `<mode>.jsonl` (prompt, paths, extracted answers, gold, verdict per item) and
`summary.json` with n, accuracy, a 95% bootstrap CI, the unextractable rate and, for text
tasks, token F1. Generation is committed a chunk at a time to `<group>.partial.jsonl`, so a
killed evaluation resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .backends import Sampler, SamplingParams
from .config import EVAL_MODES, EvalConfig
from .earlystop import Waves, draw_waves
from .io import append_jsonl, read_jsonl, write_json, write_jsonl
from .progress import bar
from .stats import bootstrap_ci
from .tasks import Example, Task
from .vote import majority

MODES = EVAL_MODES
MODE_NAMES = {
    "greedy_cot": "greedy CoT",
    "sc": "self-consistency maj@m",
    "direct": "direct answer",
    "zeroshot_cot": "zero-shot CoT",
}


def prompt_format(mode: str) -> str:
    """The prompt format an eval mode (or generation group) uses."""
    return {"direct": "fewshot_direct", "zeroshot_cot": "zeroshot_cot"}.get(mode, "fewshot_cot")


def summarize(rows: list[dict]) -> dict:
    n = max(1, len(rows))
    correct = [float(r["correct"]) for r in rows]
    out = {
        "n": len(rows),
        "accuracy": sum(correct) / n,
        "ci95": list(bootstrap_ci(correct)),
        "unextractable": sum(r["prediction"] is None for r in rows) / n,
    }
    if rows and "drawn" in rows[0]:  # sc paths drawn in all (early stopping draws fewer than n * m)
        out["paths_drawn"] = sum(r["drawn"] for r in rows)
    if rows and "f1" in rows[0]:
        f1 = [r["f1"] for r in rows]
        out.update(f1=sum(f1) / n, f1_ci95=list(bootstrap_ci(f1)))
    return out


def score_rows(task: Task, examples: list[Example], raw: list[dict], mode: str) -> list[dict]:
    """Per-item verdicts from raw generations: the first path for greedy modes, the vote for sc."""
    fmt = prompt_format(mode)
    by_id = {r["id"]: r for r in raw}
    rows = []
    for e in examples:
        r = by_id[e.id]
        paths = r["paths"]
        if mode != "sc":
            paths = paths[:1]
        elif r.get("greedy_first"):
            paths = paths[1:]
        answers = [task.extract(c, fmt, e.choices) for c in paths]
        pred = majority(answers)[0] if mode == "sc" else answers[0]
        row = {
            "id": e.id,
            "prompt": r["prompt"],
            "paths": paths,
            "answers": answers,
            "prediction": pred,
            "gold": e.answer,
            "correct": task.is_correct(pred, e.answer),
        }
        f1 = task.f1(pred, e.answer)
        if f1 is not None:
            row["f1"] = f1
        if mode == "sc":
            row.update(m=r.get("m", len(paths)), drawn=len(paths))
        rows.append(row)
    return rows


SC_TEMPERATURE = 0.7  # self-consistency paths, as in the paper (top_p stays at its default, 1)


def _groups(modes: list[str], sc_apart: bool = False) -> list[tuple[str, list[str]]]:
    """Modes that share one generation pass: greedy CoT rides as the first path of each sc call
    (one committed chunk holds both); backends that can decode it batch-invariantly (hf: apart
    from the sampled paths, see Sampler.generate), so its text is the same without sc. sc_apart:
    sc covers fewer questions (eval.sc_limit), so each is a pass of its own."""
    out = []
    cot = [m for m in ("greedy_cot", "sc") if m in modes]
    if cot:
        out += [(m, [m]) for m in cot] if sc_apart else [("cot", cot)]
    out += [(m, [m]) for m in ("direct", "zeroshot_cot") if m in modes]
    return out


def _params(
    group: str, modes: list[str], task: Task, cfg: EvalConfig, max_new_tokens: int, seed: int
) -> SamplingParams:
    if group in ("cot", "greedy_cot", "sc"):
        greedy = "greedy_cot" in modes
        n = greedy + (cfg.sc_m if "sc" in modes else 0)
        return SamplingParams(
            n=n,
            temperature=SC_TEMPERATURE if "sc" in modes else 0.0,
            max_new_tokens=max_new_tokens,
            stop=task.stop,
            seed=seed,
            greedy_first=greedy,
        )
    if group == "direct":
        return SamplingParams(n=1, temperature=0.0, max_new_tokens=16, stop=task.stop + ("\n",), seed=seed)
    return SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, stop=task.stop, seed=seed)


def mode_params(mode: str, task: Task, cfg: EvalConfig, max_new_tokens: int, seed: int) -> SamplingParams:
    """How one mode's paths are generated when it is evaluated alone."""
    ((group, modes),) = _groups([mode])
    return _params(group, modes, task, cfg, max_new_tokens, seed)


def generate_group(
    task: Task,
    sampler: Sampler,
    examples: list[Example],
    group: str,
    modes: list[str],
    path: Path,
    cfg: EvalConfig,
    shots: int,
    max_new_tokens: int,
    seed: int,
    batch_rows: int = 128,
    waves: Waves | None = None,
) -> list[dict]:
    """Raw generations for one group, appended a chunk at a time; resumes from `path`. With
    `waves` (and sc among the modes) the sc paths are drawn in waves that stop once the majority
    answer is decided (earlystop.py), greedy CoT in a call of its own."""
    fmt = prompt_format(group)
    params = _params(group, modes, task, cfg, max_new_tokens, seed)
    waves = waves if "sc" in modes else None
    rows = waves.size + params.greedy_first if waves else params.n
    chunk = max(1, batch_rows // rows)  # about one decode batch of rows (a first wave's) per committed chunk
    kept = read_jsonl(path, tolerate_torn_tail=True) if path.exists() else []
    if kept:
        write_jsonl(path, kept)  # drop a torn tail so appends stay line-aligned
    done = {r["id"] for r in kept}
    with bar(" + ".join(modes), total=len(examples), completed=len(done)) as tracker:
        for start in range(0, len(examples), chunk):
            part = [e for e in examples[start : start + chunk] if e.id not in done]
            if not part:
                continue
            prompts = [task.prompt(e.question, fmt, shots) for e in part]
            # the seed depends on the chunk's position only, so a resumed run draws the same paths
            before = tracker.completed  # the bar counts across chunks and a resumed start
            if waves:
                outs = _waves(task, sampler, part, prompts, params, waves, seed, fmt)
            else:
                outs = sampler.generate(
                    prompts,
                    SamplingParams(**{**params.__dict__, "seed": seed + start}),
                    progress=lambda k, before=before: tracker.to(before + k),
                )
            append_jsonl(
                path,
                [
                    {"id": e.id, "prompt": p, "paths": o, "greedy_first": params.greedy_first, "m": cfg.sc_m}
                    for e, p, o in zip(part, prompts, outs)
                ],
            )
            tracker.to(before + len(part))
    return read_jsonl(path)


def _waves(task, sampler, part, prompts, params, waves, seed, fmt) -> list[list[str]]:
    greedy = [[]] * len(part)
    if params.greedy_first:
        one = SamplingParams(n=1, temperature=0.0, max_new_tokens=params.max_new_tokens, stop=params.stop, seed=seed)
        greedy = sampler.generate(prompts, one)
    sampled = replace(params, n=waves.m, greedy_first=False)
    ids = [e.id for e in part]
    sc = draw_waves(sampler, prompts, ids, sampled, waves, seed, lambda c, i: task.extract(c, fmt, part[i].choices))
    return [g + s for g, s in zip(greedy, sc)]


def run_eval(
    task: Task,
    sampler: Sampler,
    examples: list[Example],
    out_dir: Path,
    cfg: EvalConfig,
    shots: int,
    max_new_tokens: int,
    seed: int,
    batch_rows: int = 128,
    waves: Waves | None = None,
) -> dict:
    """Evaluate every mode in cfg.modes; finished modes (their .jsonl exists) are skipped. `waves`:
    early stopping of the sc paths (see generate_group)."""
    out_dir = Path(out_dir)
    todo = [m for m in cfg.modes if not (out_dir / f"{m}.jsonl").exists()]
    sc_items = examples[: cfg.sc_limit or len(examples)]
    for group, modes in _groups(todo, sc_apart=len(sc_items) < len(examples)):
        items = sc_items if "sc" in modes else examples
        partial = out_dir / f"{group}.partial.jsonl"
        raw = generate_group(
            task, sampler, items, group, modes, partial, cfg, shots, max_new_tokens, seed, batch_rows, waves
        )
        for mode in modes:
            write_jsonl(out_dir / f"{mode}.jsonl", score_rows(task, items, raw, mode))
        partial.unlink()
    summary = {m: summarize(read_jsonl(out_dir / f"{m}.jsonl")) for m in cfg.modes}
    summary["task"] = {"name": task.name, "version": task.version}
    write_json(out_dir / "summary.json", summary)
    return summary
