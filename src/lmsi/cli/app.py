"""The typer app, its shared options, and how a command reports errors and opens a run."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from ..config import ConfigError
from ..io import InputError
from ..models import ModelError
from ..pipeline import Pipeline
from ..progress import quiet_libraries

app = typer.Typer(
    help="Label-free self-improvement of language models (Huang et al., 2022).\n\n"
    "Stages: sample m reasoning paths -> majority vote -> build training set -> LoRA fine-tune -> evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)  # no hard line breaks inside paths and messages


@app.callback()
def _before_every_command() -> None:
    # no docstring: typer would show it as the app's help
    quiet_libraries()  # third-party bars and deprecation warnings, unless LMSI_VERBOSE=1


CONFIG = typer.Option(None, "--config", "-c", help="YAML config file (see `lmsi config`).")
RUN_DIR = typer.Option(None, "--run-dir", "-r", help="Run directory (default: from config, runs/default).")
OVERRIDES = typer.Argument(None, help="Overrides like sample.m=8 build.threshold=0.6 model=path/to/model.gguf")
FORCE = typer.Option(False, "--force", help="Continue a run dir even if its saved config differs.")
ROUND = typer.Option(1, "--round", "-k", help="Which round (round_NN directory).")
USER_ERRORS = (ConfigError, InputError, ModelError)  # bad input: every other exception is a bug


def log(message: str) -> None:
    console.print(message, style="dim", markup=False, highlight=False)


def open_pipeline(config: Path | None, run_dir: Path | None, overrides: list[str] | None, force: bool = False):
    """The run a command works on; the command line is recorded in its commands.txt."""
    p = Pipeline.open(config, run_dir, overrides or [], force, log=log, argv=sys.argv[1:])
    _opened.append(p.run_dir)
    return p


_opened: list[Path] = []  # run dirs this command opened: where an internal error's traceback goes


def guard(fn):
    """lmsi's own input/config errors: one clear line, exit 2. Anything else is a bug in lmsi:
    exit 1, the last frames, and the whole traceback in a log file (LMSI_DEBUG=1 re-raises)."""
    try:
        return fn()
    except USER_ERRORS as e:
        if os.environ.get("LMSI_DEBUG"):
            raise
        console.print(f"[bold red]error:[/bold red] {escape(str(e))}")
        raise typer.Exit(2) from None
    except Exception as e:
        if os.environ.get("LMSI_DEBUG"):
            raise
        text = "".join(traceback.format_exception(e))
        where = _opened[-1] if _opened and _opened[-1].is_dir() else Path(tempfile.gettempdir())
        path = where / f"error-{time.strftime('%Y%m%d-%H%M%S')}.log"
        path.write_text(f"lmsi {' '.join(sys.argv[1:])}\n\n{text}")
        last = "".join(traceback.format_exception(e, limit=-3)).rstrip()
        console.print(
            f"[bold red]internal error:[/bold red] this is a bug in lmsi, not bad input.\n{escape(last)}\n"
            f"whole traceback: {escape(str(path))} (please attach it to a bug report)",
            highlight=False,
        )
        raise typer.Exit(1) from None
