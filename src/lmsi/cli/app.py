"""The typer app, its shared options, and how a command reports errors and opens a run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.console import Console

from ..config import ConfigError
from ..io import InputError
from ..models import ModelError
from ..pipeline import Pipeline

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
ROUND = typer.Option(1, "--round", "-k", help="Which round (round_NN directory).")


def log(message: str) -> None:
    console.print(message, style="dim", markup=False, highlight=False)


def open_pipeline(config: Path | None, run_dir: Path | None, overrides: list[str] | None, force: bool = False):
    """The run a command works on; the command line is recorded in its commands.txt."""
    return Pipeline.open(config, run_dir, overrides or [], force, log=log, argv=sys.argv[1:])


def guard(fn):
    """Turn known user errors into one clear line and exit code 2: no traceback walls."""
    try:
        return fn()
    except (ConfigError, InputError, ModelError, ValueError, RuntimeError, FileNotFoundError) as e:
        if os.environ.get("LMSI_DEBUG"):
            raise
        console.print(f"[bold red]error:[/bold red] {e}")
        raise typer.Exit(2) from None
