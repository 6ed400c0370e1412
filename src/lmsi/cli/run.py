"""`lmsi run`, the single stages, and `lmsi eval`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..archive import archive_run, check_archive_dest
from ..borrow import reuse_samples
from ..lmeval import export_lmeval
from ..report import build_report
from ..rundir import RunDir, slug
from .app import CONFIG, FORCE, OVERRIDES, ROUND, RUN_DIR, app, console, guard, open_pipeline


@app.command()
def run(
    config: Path | None = CONFIG,
    run_dir: Path | None = RUN_DIR,
    overrides: list[str] | None = OVERRIDES,
    force: bool = FORCE,
    rounds: int | None = typer.Option(
        None,
        "--rounds",
        help="Self-improvement rounds (loop.rounds); stops early when label-free agreement stops rising.",
    ),
    questions: str | None = typer.Option(
        None, "--questions", help="'self': the model writes its own unlabeled questions (selfgen.questions)."
    ),
    exemplars: str | None = typer.Option(
        None,
        "--exemplars",
        help="'self': few-shot exemplars from the model's confident zero-shot answers (selfgen.exemplars).",
    ),
    student: str | None = typer.Option(
        None, "--student", help="Distil into this smaller model instead of self-training (student=...)."
    ),
    engine: str | None = typer.Option(
        None, "--engine", help="'ray': sample on a Ray cluster (engine=ray, see ray.*); default local."
    ),
    backend: str | None = typer.Option(None, "--backend", help="hf, llamacpp, openai, vllm or auto (backend=...)."),
    draws: int | None = typer.Option(
        None,
        "--draws",
        help="Build/train draws per round on the same samples (train.draws): the report gives their mean and spread.",
    ),
    samples_from: Path | None = typer.Option(
        None,
        "--samples-from",
        help="Reuse this run's base eval and round-1 samples (same model, data, sample and eval config; eval.modes may be a subset of its modes): compare build/train variants on one sample budget. An `lmsi signal` dir gives its measured paths as round-1 samples (same questions, m, T).",
    ),
    archive: Path | None = typer.Option(
        None,
        "--archive",
        help="After every finished stage, copy the run's numbers (no dataset text, no weights) to this folder, as `lmsi archive` does: a long run that dies with its machine keeps what it finished.",
    ),
):
    """Run every stage: base eval, then per round sample -> vote -> build -> train -> eval, then the report.

    Finished stages are skipped, so rerunning the same command resumes. Examples:\n
      lmsi run                                   # the default job\n
      lmsi run --rounds 3 -r runs/three          # iterate; report.md shows every round\n
      lmsi run --draws 3 -r runs/draws           # three training draws on the same samples\n
      lmsi run --questions self --exemplars self # no human-written questions or exemplars\n
      lmsi run data.task=gsm8k sample.m=32 sample.max_new_tokens=256\n
      lmsi run -r runs/dpo train.method=dpo --samples-from runs/sft   # same samples, other method\n
      lmsi run -r runs/long --archive docs/runs/long   # keep each finished stage's numbers in git's tree
    """
    extra = [f"loop.rounds={rounds}"] * (rounds is not None) + [f"student={student}"] * (student is not None)
    extra += [f"engine={engine}"] * (engine is not None) + [f"backend={backend}"] * (backend is not None)
    extra += [f"train.draws={draws}"] * (draws is not None)
    for flag, value, key in (
        ("--questions", questions, "selfgen.questions"),
        ("--exemplars", exemplars, "selfgen.exemplars"),
    ):
        if value is not None:
            if value not in ("self", "data", "fixed"):
                console.print(
                    f"[bold red]error:[/bold red] {flag} takes 'self' (or 'data'/'fixed' for the default), not {value!r}"
                )
                raise typer.Exit(2)
            extra.append(f"{key}={str(value == 'self').lower()}")

    def go():
        p = open_pipeline(config, run_dir, (overrides or []) + extra, force)
        try:
            if archive:
                check_archive_dest(p.run_dir, archive)
            if samples_from:
                reuse_samples(p, samples_from)
        except Exception:
            p.discard_if_unstarted()  # a refused archive or borrow leaves no half-made run dir behind
            raise
        if archive:
            p.after_stage = lambda key: archive_run(p.run_dir, archive)
        p.run()
        print(build_report(p.run_dir))
        console.print(f"report: {p.run_dir / 'report.md'}")
        if archive:
            archive_run(p.run_dir, archive)
            console.print(f"archive: {archive}")

    guard(go)


def _stage_cmd(name: str, doc: str):
    def cmd(
        config: Path | None = CONFIG,
        run_dir: Path | None = RUN_DIR,
        overrides: list[str] | None = OVERRIDES,
        force: bool = FORCE,
        k: int = ROUND,
        redo: bool = typer.Option(False, "--redo", help="Run the stage even if the manifest says it is done."),
    ):
        def go():
            p = open_pipeline(config, run_dir, overrides, force)
            if name == "report":
                print(build_report(p.run_dir))
            else:
                p.stage(name, k, force=redo)

        guard(go)

    cmd.__doc__ = doc
    return cmd


for _name, _doc in [
    ("sample", "Draw m chain-of-thought paths per unlabeled question -> round_NN/samples.jsonl."),
    ("vote", "Majority-vote each question's answers; confidence = vote share -> round_NN/votes.jsonl."),
    (
        "build",
        "Keep confident questions' majority paths in four formats -> round_NN/train.jsonl "
        "(train.method=dpo: pairs.jsonl; grpo: prompts.jsonl).",
    ),
    (
        "train",
        "LoRA (or full) training by train.method (sft, dpo, grpo) -> round_NN/adapter/ and merged round_NN/model/.",
    ),
    ("report", "Write report.md and report.png from the run directory and print the table."),
]:
    app.command(name=_name)(_stage_cmd(_name, _doc))


@app.command(name="eval")
def eval_cmd(
    config: Path | None = CONFIG,
    run_dir: Path | None = RUN_DIR,
    overrides: list[str] | None = OVERRIDES,
    force: bool = FORCE,
    task: str | None = typer.Option(
        None,
        "--task",
        "-t",
        help="Evaluate on this task alone, no training run (see `lmsi tasks`; file:PATH and hf:ID work too).",
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Model for --task: embedded:NAME, a .gguf, an HF folder or hub id (default: the config's).",
    ),
    mode: list[str] | None = typer.Option(
        None, "--mode", help="greedy-cot, sc, direct or zero-shot-cot; repeat for several (default: greedy-cot)."
    ),
    split: str | None = typer.Option(None, "--split", help="Labeled split to score (default: the task's eval split)."),
    limit: int = typer.Option(0, "--limit", "-n", help="With --task: first N questions (0 = the whole split)."),
    which: str = typer.Option("both", help="In a run directory: base, tuned or both."),
    k: int = ROUND,
    redo: bool = typer.Option(False, "--redo", help="Re-evaluate even if done."),
    export: str | None = typer.Option(
        None,
        "--export",
        help="Also write the evaluation in another harness's layout: lm-eval (results_*.json, samples_*.jsonl).",
    ),
    export_dir: Path | None = typer.Option(None, "--export-dir", help="Where --export writes (default: RUN/lm-eval)."),
):
    """Evaluate a model: alone on any task (--task), or a run's base and tuned models on its held-out split.

    Examples:\n
      lmsi eval --task gsm8k --mode greedy-cot              # embedded default model, all 1,319 test questions\n
      lmsi eval --task arc_challenge --model my.gguf --mode sc --limit 200\n
      lmsi eval --run-dir runs/default --which tuned\n
      lmsi eval --task gsm8k --limit 200 --export lm-eval   # also lm-evaluation-harness's output layout
    """
    if export not in (None, "lm-eval"):
        raise typer.BadParameter(f"unknown format {export!r}; the one supported is lm-eval", param_hint="--export")

    def write(p, eval_dir: Path, model: str, examples) -> None:
        out = export_dir or p.run_dir / "lm-eval"
        files = export_lmeval(eval_dir, out, p.cfg, p.eval_task, model, examples)
        console.print(f"lm-eval layout: {files[0]} (+{len(files) - 1} samples file(s))")

    def go():
        if task or model:
            extra = [
                f"data.task={task or 'arith'}",
                f"eval.limit={limit}",
                "eval.modes=[" + ",".join(mode or ["greedy_cot"]) + "]",
                "loop.stop=false",  # no loop here: no stop rule reads the sc vote shares, so sc may stop early
            ]
            extra += [f"model={model}"] if model else []
            extra += [f"eval.split={split}"] if split else []
            name = slug(task or "arith", (model or "default").split("/")[-1])
            p = open_pipeline(config, run_dir or Path("runs") / "eval" / name, (overrides or []) + extra, force)
            summary = p.evaluate_only()
            for m in p.cfg.eval.modes:
                s = summary[m]
                f1 = f"  F1 {100 * s['f1']:.1f}" if "f1" in s else ""
                print(
                    f"{p.eval_task.name} {m:13s} n={s['n']:5d}  accuracy {100 * s['accuracy']:.1f}% "
                    f"[95% CI {100 * s['ci95'][0]:.1f}-{100 * s['ci95'][1]:.1f}]{f1}  unextractable {100 * s['unextractable']:.1f}%"
                )
            console.print(f"per-item results: {p.run_dir / 'eval'}")
            if export:
                write(p, p.run_dir / "eval", p.cfg.model, p.data.held_out)
            return
        p = open_pipeline(config, run_dir, overrides, force)
        if which in ("base", "both"):
            p.stage("eval_base", force=redo)
        if which in ("tuned", "both"):
            p.stage("eval", k, force=redo)
        if export:
            run, base = RunDir(p.run_dir), p.cfg.student or p.cfg.model
            if which in ("base", "both"):
                write(p, run.base_eval, base, p.data.eval_examples)
            if which in ("tuned", "both"):
                write(p, run.eval_dir(k), f"{base}+lmsi-round{k}", p.data.eval_examples)

    guard(go)
