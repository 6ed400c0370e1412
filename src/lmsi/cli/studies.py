"""Studies and reports: `lmsi bench`, `signal`, `sweep`, `compare`, `results`, `archive`, `export`."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

import typer

from ..archive import archive_run
from ..bench import run_bench, save_result
from ..bench_train import run_train_bench, save_train_result
from ..compare import compare_runs
from ..config import RunConfig
from ..export import export_model, push_to_hub
from ..io import InputError, atomic_write_text
from ..results import build_results
from ..signal import run_signal
from ..sweep import run_sweep
from .app import CONFIG, OVERRIDES, RUN_DIR, app, console, guard, log

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
    engines: str = typer.Option(
        "naive,hf,llamacpp",
        "--engines",
        help="Comma list of naive, hf, hf-int8 (hf on int8 dynamically quantized Linear layers), llamacpp, "
        "llamacpp-split (llama.cpp with one KV stream per path instead of one shared pool).",
    ),
    batch_rows: int = typer.Option(128, "--batch-rows"),
    dtype: str = typer.Option(
        "auto", "--dtype", help="torch dtype of naive and hf: auto (the faster here), float32 or bfloat16."
    ),
    save: bool = typer.Option(True, "--save/--no-save", help="Write benchmarks/results/sample-<time>.md."),
):
    """Sampling throughput: naive `model.generate` (baseline) vs each backend, same prompts, same run.

    lmsi bench sample                         # 4 GSM8K questions, 4-shot, m=16, T=0.7, <=128 tokens
    """

    def go():
        allowed = next(f for f in fields(RunConfig) if f.name == "dtype").metadata["choices"]  # the config's own
        if dtype not in allowed:
            raise InputError(f"--dtype takes {', '.join(allowed[:-1])} or {allowed[-1]}, not {dtype!r}")
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
            dtype=dtype,
        )
        print(text)
        if save:
            cmd = " ".join(["lmsi"] + sys.argv[1:])
            console.print(f"saved: {save_result(text, cmd)}")

    guard(go)


@bench_app.command("train")
def bench_train(
    model: str = typer.Option("embedded:qwen2.5-coder-0.5b", "--model", "-m"),
    task: str = typer.Option("gsm8k", "--task", "-t"),
    rows: int = typer.Option(12, "--rows", "-n", help="SFT rows (the task's first unlabeled questions)."),
    shots: int = typer.Option(2, "--shots", help="Exemplars in few-shot rows (build.shots)."),
    repeat: int = typer.Option(1, "--repeat", help="Runs, each on a freshly loaded model."),
    tag: str = typer.Option("", "--tag", help="Suffix of the results file, e.g. before/after."),
    save: bool = typer.Option(True, "--save/--no-save", help="Write benchmarks/results/train-<time>[-tag].md."),
    overrides: list[str] | None = typer.Argument(None, help="train.* settings, e.g. train.batch_size=4."),
):
    """SFT training throughput (tokens/s) on fixed rows in the build format; compare code paths by
    running it on each, back to back, on the same machine.

    lmsi bench train --repeat 2 --tag before    # 12 GSM8K rows, 2-shot, the embedded 0.5B model
    """

    def go():
        text, _ = run_train_bench(
            model, task, rows, shots, overrides or [], repeat, log=lambda m: console.print(m, style="dim")
        )
        print(text)
        if save:
            cmd = " ".join(["lmsi"] + sys.argv[1:])
            console.print(f"saved: {save_train_result(text, cmd, tag)}")

    guard(go)


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
        text, out = run_signal(
            task, model, paths, split, limit, weighted, run_dir, config, overrides or [], log=log, argv=sys.argv[1:]
        )
        print(text)
        console.print(f"signal: {out / 'signal.md'}")

    guard(go)


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
        print(run_sweep(run_dir, specs, config, log=log))
        console.print(f"sweep report: {run_dir / 'sweep.md'}")

    guard(go)


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
        text = compare_runs(run_dirs, round_k)
        print(text)
        if out:
            atomic_write_text(out, text)
            console.print(f"comparison: {out}")

    guard(go)


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
        bad = [a for a in alias or [] if "=" not in a]
        if bad:
            raise InputError(f"--alias takes PATH=NAME, not {bad[0]!r}")
        aliases = dict(a.split("=", 1) for a in alias or [])
        out.parent.mkdir(parents=True, exist_ok=True)
        groups = [[Path(d) for d in g.split(",") if d] for g in compare or []]
        atomic_write_text(out, build_results(run_dirs, out, aliases, groups) + "\n")
        console.print(f"results: {out}")

    guard(go)


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
        files = archive_run(run_dir, out)
        size = sum(f.stat().st_size for f in files)
        console.print(f"archived {len(files)} files ({size / 1e6:.2f} MB) to {out}")

    guard(go)


@app.command()
def export(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="An lmsi run directory with a trained round."),
    out: Path = typer.Argument(..., metavar="OUT", help="The model folder to write."),
    round_k: int | None = typer.Option(
        None, "--round", min=1, help="The round whose model to export (default: the last trained round)."
    ),
    gguf: bool = typer.Option(
        False, "--gguf", help="Also write model-q8_0.gguf for llama.cpp (llama and qwen2; needs a GGUF base model)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists and is not empty."),
    push: str | None = typer.Option(
        None, "--push-to-hub", metavar="REPO_ID", help="Then upload OUT to the Hugging Face Hub (token: HF_TOKEN)."
    ),
):
    """Export a round's model: a transformers folder (merged safetensors, tokenizer, generation
    config) with a model card (README.md: base model, method, data, rounds, before/after accuracy
    with CIs, the exact commands, the base model's licence), optionally a Q8_0 GGUF and an upload.

    Example:\n
      lmsi export runs/default export/default --gguf\n
      lmsi export runs/default export/default --round 1 --force --push-to-hub me/model-lmsi
    """

    def go():
        folder = export_model(run_dir, out, round_k, gguf, force, argv=sys.argv[1:], log=log)
        console.print(f"exported: {folder}")
        if push:
            console.print(f"uploaded: {push_to_hub(folder, push)}")

    guard(go)
