"""The one reader of run directories: a typed view of what the stages wrote.

    run = RunDir("runs/default")
    run.config["build"]["threshold"], run.rounds(), run.summary(run.eval_dir(1)), run.rows(run.base_eval, "sc")

Layout (lmsi run):  config.yaml, manifest.json, commands.txt, contamination.json, eval_base/,
[eval_student/], round_NN/{samples,votes,train}.jsonl, round_NN/{adapter,model,eval}/, loop.json,
report.md. `lmsi signal` and `lmsi eval --task` directories hold eval/ (and signal.json) instead of
rounds. An `lmsi archive` copy has the same layout without text or weights, and reads the same.
The saved config is written and read only here.
"""

from __future__ import annotations

import functools
import re
import shlex
import time
from pathlib import Path

import yaml

from .config import RunConfig, load_config, with_defaults
from .io import InputError, Manifest, atomic_write_text, read_json, read_jsonl, write_json
from .tasks import Task, task_from_data

CONFIG = "config.yaml"
LEGACY_CONFIG = "config.json"  # runs before 2026-12 saved the config twice; archives keep both
TORN = re.compile(r".+\.[A-Za-z0-9_]{8}\.tmp")  # mkstemp(prefix=name + ".", suffix=".tmp")
# what opening a run writes before any stage has run (plus error-*.log from a failed start)
OPENING_FILES = {CONFIG, LEGACY_CONFIG, "commands.txt", "contamination.json", "manifest.json", "resolved.json"}


def slug(*parts: str) -> str:
    """A folder name from parts (task, split, model, ...): anything but [A-Za-z0-9-_.] becomes _."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in "-".join(parts))


def task_for(cfg: dict, name: str | None = None) -> Task:
    """The task a saved config names (default: its training task), with the config's field mapping."""
    d = cfg.get("data", {})
    return task_from_data(name or d.get("task", "arith"), d)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- config ---------------------------------------------------------
    def has_config(self) -> bool:
        return (self.path / CONFIG).exists() or (self.path / LEGACY_CONFIG).exists()

    def raw_config(self) -> dict | None:
        """The config as saved (None if the directory holds none)."""
        if (self.path / CONFIG).exists():
            return yaml.safe_load((self.path / CONFIG).read_text()) or {}
        return read_json(self.path / LEGACY_CONFIG)

    @functools.cached_property
    def config(self) -> dict:
        """The saved config; keys added to lmsi after the run started read as their defaults."""
        raw = self.raw_config()
        if raw is None:
            raise InputError(f"{self.path}: no {CONFIG}; is this an lmsi run directory?")
        return with_defaults(raw)

    def run_config(self, overrides: list[str] = ()) -> RunConfig:
        """The saved config as a RunConfig (to resume with), plus overrides."""
        return load_config(None, overrides, base=self.raw_config())

    def save_config(self, cfg: RunConfig) -> None:
        atomic_write_text(self.path / CONFIG, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        self.__dict__.pop("config", None)

    @property
    def task(self) -> Task:
        return task_for(self.config)

    @property
    def eval_task(self) -> Task:
        return task_for(self.config, self.config["eval"]["task"] or None)

    # -- manifest and records -------------------------------------------
    @property
    def manifest(self) -> Manifest:
        return Manifest(self.path)

    @property
    def stages(self) -> dict:
        return (read_json(self.path / "manifest.json") or {"stages": {}})["stages"]

    def has_stage_output(self) -> bool:
        """Whether any stage has written anything, finished or partial (then its config is locked)."""
        if self.stages:
            return True
        return any(
            f.is_file() and f.relative_to(self.path).as_posix() not in OPENING_FILES and not f.name.startswith("error-")
            for f in self.path.rglob("*")
        )

    def clear_torn_writes(self) -> list[Path]:
        """Remove the temp files of atomic writes a kill interrupted (`<name>.<random>.tmp`, see
        io.atomic_write_text); only one process works on a run directory at a time."""
        torn = [f for f in self.path.rglob("*.tmp") if f.is_file() and TORN.fullmatch(f.name)]
        for f in torn:
            f.unlink(missing_ok=True)
        return torn

    def seconds(self) -> float:
        return sum(s.get("seconds", 0) for s in self.stages.values())

    def commands(self) -> list[str]:
        """The recorded `lmsi ...` invocations, oldest first."""
        path = self.path / "commands.txt"
        return [line.split("  ", 1)[-1] for line in path.read_text().splitlines()] if path.exists() else []

    def record_command(self, argv: list[str]) -> None:
        """Append an invocation to commands.txt, so results pages can cite the exact command."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / "commands.txt", "a") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}  {shlex.join(['lmsi', *argv])}\n")

    def resolved(self, key: str, measure) -> str:
        """A setting measured on this machine once (dtype=auto), then kept in resolved.json for the run's life."""
        known = read_json(self.path / "resolved.json") or {}
        if key not in known:
            known[key] = measure()
            write_json(self.path / "resolved.json", known)
        return known[key]

    def json(self, rel: str) -> dict | list | None:
        """A JSON file lmsi wrote (loop.json, contamination.json, signal.json, ...), or None."""
        return read_json(self.path / rel)

    # -- layout ---------------------------------------------------------
    def round_dir(self, k: int) -> Path:
        return self.path / f"round_{k:02d}"

    def draw_dir(self, k: int, d: int = 0) -> Path:
        """Round k's training draw d (train.draws): draw 0 lives in the round's folder, draw d in draw_D/."""
        return self.round_dir(k) if d == 0 else self.round_dir(k) / f"draw_{d}"

    def draws(self, k: int) -> list[int]:
        """Round k's evaluated training draws."""
        extra = sorted(int(p.name[5:]) for p in self.round_dir(k).glob("draw_[0-9]*"))
        return [d for d in [0, *extra] if (self.draw_dir(k, d) / "eval" / "summary.json").exists()]

    def chosen_draw(self, k: int) -> int:
        """The draw whose model round k+1 samples with (0 unless the round had several draws)."""
        return self.stages.get(f"round_{k:02d}/select", {}).get("draw", 0)

    def rounds(self) -> list[int]:
        return [int(d.name[-2:]) for d in sorted(self.path.glob("round_[0-9][0-9]"))]

    @property
    def base_eval(self) -> Path:
        """What the tuned models are compared with: the student before training, else the base model."""
        student = self.path / "eval_student"
        return student if (student / "summary.json").exists() else self.path / "eval_base"

    def eval_dir(self, k: int, d: int | None = None) -> Path:
        """Where the model after round k (draw d; default the chosen one) was evaluated (k=0: the base model)."""
        return self.path / "eval_base" if k == 0 else self.draw_dir(k, self.chosen_draw(k) if d is None else d) / "eval"

    def evaluated_rounds(self) -> list[int]:
        return [k for k in self.rounds() if (self.eval_dir(k) / "summary.json").exists()]

    def trained(self, k: int) -> bool:
        return f"round_{k:02d}/train" in self.stages

    def kind(self) -> str:
        """signal (lmsi signal), eval (lmsi eval --task), run (lmsi run) or '' (not an lmsi directory)."""
        if (self.path / "signal.json").exists():
            return "signal"
        if (self.path / "eval" / "summary.json").exists():
            return "eval"
        return "run" if (self.path / "eval_base").exists() or (self.path / "manifest.json").exists() else ""

    # -- files in a folder ----------------------------------------------
    @staticmethod
    def summary(eval_dir: Path) -> dict | None:
        return read_json(Path(eval_dir) / "summary.json")

    @staticmethod
    def rows(folder: Path, name: str) -> list[dict]:
        """`<name>.jsonl` of a folder (an eval mode's rows, votes, train, train_log), [] if absent."""
        path = Path(folder) / f"{name}.jsonl"
        return read_jsonl(path) if path.exists() else []
