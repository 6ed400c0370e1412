"""Stage borrowing: a run takes finished stages from another run instead of redoing them.

`lmsi run --samples-from SRC` borrows SRC's base eval and round-1 samples (same model, data,
sampling and eval config), so methods that differ only after sampling are compared on one sample
budget; from an `lmsi signal` directory it takes the measured paths as round-1 samples. `lmsi
sweep` shares one base eval and one sampling pass (at the largest m) among its grid points.
Borrowed stages keep the source's wall time in the manifest and name the source.

`p` below is the borrowing `pipeline.Pipeline` (its config, task, manifest and round folders).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .backends import SamplingParams
from .config import ConfigError, diff_configs
from .evaluate import SC_TEMPERATURE
from .io import InputError, read_jsonl, write_jsonl
from .rundir import RunDir
from .sample import sample_row

# keys a borrowed stage depends on: a run that differs in any of them must sample for itself
SAMPLE_KEYS = ("model", "backend", "dtype", "seed", "student", "data", "sample", "eval", "selfgen", "loop.questions")
# the files each borrowable stage leaves behind
STAGE_FILES = {
    "exemplars": ["exemplars.json"],
    "questions": ["questions_self.jsonl"],
    "eval_base": ["eval_base", "contamination.json"],
    "eval_student": ["eval_student"],
    "round_01/sample": ["round_01/samples.jsonl", "round_01/path_logprobs.jsonl"],
}


def copy_stage(p, src: Path, stage: str, seconds: float = 0.0, **info) -> None:
    """Copy another run's outputs of a finished stage into p's run and mark the stage done there."""
    for rel in STAGE_FILES[stage]:
        a, b = Path(src) / rel, p.run_dir / rel
        if a.is_dir():
            shutil.copytree(a, b, dirs_exist_ok=True)
        elif a.exists():
            b.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(a, b)
    p.manifest.mark(stage, seconds, **info)


def _eval_subset(p, diff: str, theirs: dict) -> bool:
    """A borrowed base eval serves a run that evaluates fewer of its modes on the same items
    (say greedy CoT only, to compare many variants cheaply); the sc path count matters only
    when sc is still evaluated."""
    key, e = diff.split(":")[0], p.cfg.eval
    return (key == "eval.modes" and set(e.modes) <= set(theirs["modes"])) or (
        key in ("eval.sc_m", "eval.sc_limit") and "sc" not in e.modes
    )


def reuse_samples(p, src: Path) -> list[str]:
    """Borrow src's base eval and round-1 samples (or an `lmsi signal` dir's paths); returns the
    names of the stages taken."""
    src = RunDir(src)
    theirs = src.config  # InputError when src is not an lmsi run directory
    if src.kind() == "signal":
        return reuse_signal_paths(p, src)
    diff = [
        d
        for d in diff_configs(theirs, p.cfg.to_dict())
        if d.split(":")[0].startswith(SAMPLE_KEYS) and not _eval_subset(p, d, theirs["eval"])
    ]
    if diff:
        raise ConfigError(f"cannot reuse the samples of {src.path}: its config differs in\n  " + "\n  ".join(diff))
    stages, taken = src.stages, []
    for stage in STAGE_FILES:
        if stage not in stages or p.manifest.done(stage):
            continue
        # a stage the source itself borrowed names this source, the one the user can check
        info = {k: v for k, v in stages[stage].items() if k not in ("seconds", "finished")}
        copy_stage(p, src.path, stage, stages[stage]["seconds"], **{**info, "reused_from": str(src.path)})
        taken.append(stage)
    if "round_01/sample" not in taken and not p.manifest.done("round_01/sample"):
        raise InputError(f"{src.path} has not finished sampling round 1; nothing to reuse")
    p.log(f"reused from {src.path}: {', '.join(taken) or 'nothing (already done here)'}")
    return taken


def reuse_signal_paths(p, src: RunDir) -> list[str]:
    """Round-1 samples from an `lmsi signal` directory: its sampled paths on the same questions,
    model and sampling settings (measure the signal, then train on those very paths). The gold
    answers it scored against stay in the rows only as `gold`, like every round's samples."""
    if p.manifest.done("round_01/sample"):
        return []
    if p.cfg.selfgen.questions or p.cfg.selfgen.exemplars:
        raise ConfigError(
            "--samples-from a signal directory needs the task's own questions and exemplars (selfgen off)"
        )
    t, c, s = src.config, p.cfg, p.cfg.sample
    theirs = {
        "model": t["model"],
        "backend": t["backend"],
        "dtype": t["dtype"],
        "task": t["eval"]["task"] or t["data"]["task"],
        "split": t["eval"]["split"],
        "m": t["eval"]["sc_m"],
        "temperature": SC_TEMPERATURE,
        "top_p": SamplingParams.top_p,
        "max_new_tokens": t["sample"]["max_new_tokens"],
        "shots": t["sample"]["shots"],
    }
    ours = {
        "model": c.model,
        "backend": c.backend,
        "dtype": c.dtype,
        "task": c.data.task,
        "split": p.task.resolve_split(c.data.split, "unlabeled"),
        "m": s.m,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "max_new_tokens": s.max_new_tokens,
        "shots": s.shots,
    }
    diff = [f"{k}: {theirs[k]!r} there, {ours[k]!r} here" for k in ours if theirs[k] != ours[k]]
    if diff:
        raise ConfigError(f"cannot reuse the paths of {src.path}: it differs in\n  " + "\n  ".join(diff))
    rows = {r["id"]: r for r in src.rows(src.path / "eval", "sc")}
    out = []
    for q in p.questions(1):
        r = rows.get(q.id)
        prompt = p.task.prompt(q.question, "fewshot_cot", s.shots)
        if r is None or r["prompt"] != prompt:
            why = "was not measured there" if r is None else "was sampled there with another prompt"
            raise InputError(f"cannot reuse the paths of {src.path}: question {q.id} {why}")
        out.append(sample_row(p.task, q, prompt, r["paths"], s.m))
    write_jsonl(p.round_dir(1) / "samples.jsonl", out)
    if (src.path / "eval" / "path_logprobs.jsonl").exists():  # `lmsi signal --weighted` scored these very paths
        shutil.copy2(src.path / "eval" / "path_logprobs.jsonl", p.round_dir(1) / "path_logprobs.jsonl")
    seconds = src.stages.get("eval_only", {}).get("seconds", 0.0)
    p.manifest.mark(
        "round_01/sample",
        seconds,
        questions=len(out),
        reused_from=str(src.path),
        note="paths sampled by lmsi signal; seconds include its greedy pass",
    )
    p.log(f"reused from {src.path}: round_01/sample ({len(out)} questions)")
    return ["round_01/sample"]


def share_base_eval(p, src: Path) -> None:
    """A sweep point takes the first point's base evaluation (same model and eval set)."""
    if not p.manifest.done("eval_base"):
        copy_stage(p, src, "eval_base", shared_from=str(src))


def share_sample_pass(p, src: Path) -> None:
    """A sweep point takes the first m of another point's paths at the same temperature: the
    first m' of m i.i.d. paths are an m'-path sample."""
    if p.manifest.done("round_01/sample"):
        return
    rows, m = read_jsonl(Path(src) / "round_01" / "samples.jsonl"), p.cfg.sample.m
    if any(len(r["answers"]) < r.get("m", 0) for r in rows):
        raise InputError(f"cannot share the paths of {src}: sampling stopped early there (sample.early_stop)")
    write_jsonl(
        p.round_dir(1) / "samples.jsonl",
        [{**r, "completions": r["completions"][:m], "answers": r["answers"][:m], "m": m, "drawn": m} for r in rows],
    )
    p.manifest.mark("round_01/sample", 0.0, shared_from=str(src), questions=len(rows))
