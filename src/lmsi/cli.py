"""`lmsi` command line: a thin wrapper over lmsi.pipeline.

    lmsi run                                  # the default job (embedded model, arith task)
    lmsi run --config my.yaml sample.m=8      # YAML plus dotted overrides
    lmsi sample|vote|build|train|eval|report --run-dir runs/default
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="Label-free self-improvement of language models (Huang et al., 2022).\n\n"
                  "Stages: sample m reasoning paths -> majority vote -> build training set -> LoRA fine-tune -> evaluate.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console(stderr=True)

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
    return Pipeline(cfg, force=force, log=lambda m: console.print(m, style="dim", markup=False, highlight=False))


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
        raise typer.Exit(2)


@app.command()
def run(config: Optional[Path] = CONFIG, run_dir: Optional[Path] = RUN_DIR, overrides: Optional[list[str]] = OVERRIDES,
        force: bool = FORCE):
    """Run every stage (base eval, sample, vote, build, train, eval, report); finished stages are skipped."""
    def go():
        p = _pipeline(config, run_dir, overrides, force)
        table = p.run()
        print(table)
        console.print(f"report: {p.run_dir / 'report.md'}")
    _guard(go)


def _stage_cmd(name: str, doc: str):
    def cmd(config: Optional[Path] = CONFIG, run_dir: Optional[Path] = RUN_DIR,
            overrides: Optional[list[str]] = OVERRIDES, force: bool = FORCE,
            redo: bool = typer.Option(False, "--redo", help="Run the stage even if the manifest says it is done.")):
        def go():
            p = _pipeline(config, run_dir, overrides, force)
            p.stage(name, force=redo)
            if name == "report":
                print(p.table)
        _guard(go)
    cmd.__doc__ = doc
    return cmd


for _name, _doc in [
    ("sample", "Draw m chain-of-thought paths per unlabeled question -> round_01/samples.jsonl."),
    ("vote", "Majority-vote each question's answers; confidence = vote share -> round_01/votes.jsonl."),
    ("build", "Keep confident questions' majority paths in four formats -> round_01/train.jsonl."),
    ("train", "LoRA (or full) fine-tune on train.jsonl -> round_01/adapter/ and merged round_01/model/."),
    ("report", "Write report.md and report.png from the run directory and print the table."),
]:
    app.command(name=_name)(_stage_cmd(_name, _doc))


@app.command(name="eval")
def eval_cmd(config: Optional[Path] = CONFIG, run_dir: Optional[Path] = RUN_DIR,
             overrides: Optional[list[str]] = OVERRIDES, force: bool = FORCE,
             which: str = typer.Option("both", help="base, tuned or both"),
             redo: bool = typer.Option(False, "--redo", help="Re-evaluate even if done.")):
    """Evaluate on the labeled held-out split: greedy CoT, self-consistency maj@m, direct answer."""
    def go():
        p = _pipeline(config, run_dir, overrides, force)
        if which in ("base", "both"):
            p.stage("eval_base", force=redo)
        if which in ("tuned", "both"):
            p.stage("eval", force=redo)
    _guard(go)


@app.command()
def config():
    """Print every config key with its default and help (a starting YAML file)."""
    from .config import describe

    print(describe())


@app.command()
def tasks():
    """List registered tasks and their split sizes."""
    from .tasks import TASKS

    for name, cls in TASKS.items():
        t = cls()
        try:
            sizes = t.splits() or {s: len(t.load(s)) for s in ("train", "test")}
        except Exception as e:  # a missing local file should not hide the other tasks
            sizes = {"unavailable": str(e)}
        print(f"{name:12s} v{t.version}  " + "  ".join(f"{k}={v}" for k, v in sizes.items()))


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
