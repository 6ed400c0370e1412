"""Progress of a stage, and how loud the libraries underneath may be.

`bar(label, total)` is a context manager yielding a tracker with `advance(n)`, `to(k)` and
`completed`. On a terminal it draws a rich bar; off one (nohup, CI, a pipe) it logs plain lines,
`sample 12/100 (3.1/s, ETA 28s)`, at most one per LMSI_PROGRESS_EVERY seconds (30) plus the
last one. LMSI_PROGRESS=1 forces the rich bar, LMSI_PROGRESS=0 silences both.

`quiet_libraries()` (the CLI calls it before every command) hides the libraries' bars (weights
loading and saving, downloads; off a terminal every tqdm bar, the Trainer's too) and their
deprecation warnings, which a user can do nothing about. LMSI_VERBOSE=1 keeps them all.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# where third-party deprecations are raised, or attributed to (a stacklevel can point into lmsi)
LIBRARIES = r"(transformers|trl|peft|accelerate|torch|datasets|huggingface_hub|tokenizers|safetensors|gguf|vllm|llama_cpp|lmsi)(\.|$)"
EVERY_S = 30.0  # default seconds between two plain progress lines


def verbose() -> bool:
    return os.environ.get("LMSI_VERBOSE", "") not in ("", "0")


def _interactive() -> bool:
    """Rich bars: stderr is a terminal, or LMSI_PROGRESS=1 asks for them anyway."""
    forced = os.environ.get("LMSI_PROGRESS")
    return forced == "1" or (forced != "0" and sys.stderr.isatty())


def quiet_libraries() -> None:
    """Hide third-party progress bars and deprecation warnings for this process (and the
    libraries it imports later), unless LMSI_VERBOSE=1. A variable the user set is kept."""
    if verbose():
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' bars follow the hub's
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if not _interactive():
        os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported: the Trainer's bar, GGUF's
    for category in (FutureWarning, DeprecationWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=LIBRARIES)


def _every() -> float:
    try:
        return max(0.0, float(os.environ.get("LMSI_PROGRESS_EVERY", EVERY_S)))
    except ValueError:
        return EVERY_S


def _duration(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class _Lines:
    """A tracker that logs `label done/total (rate, ETA)` lines to stderr, throttled."""

    def __init__(self, label: str, total: int, completed: int = 0, silent: bool = False, t0: float | None = None):
        self.label, self.total, self.silent, self.every = label, total, silent, _every()
        self._start = self._done = self._said = completed
        self._t0 = time.monotonic() if t0 is None else t0
        self._said_at: float | None = None

    @property
    def completed(self) -> int:
        return self._done

    def advance(self, n: int = 1) -> None:
        self.to(self._done + n)

    def to(self, k: int) -> None:
        self._done = k
        now = time.monotonic()
        if k >= self.total or self._said_at is None or now - self._said_at >= self.every:
            self.say(now)

    def say(self, now: float | None = None) -> None:
        """One line, if anything was done since the last one."""
        if self.silent or self._done == self._said:
            return
        now = time.monotonic() if now is None else now
        self._said, self._said_at = self._done, now
        elapsed, done_here = now - self._t0, self._done - self._start
        if elapsed > 0 and done_here > 0:
            rate = done_here / elapsed
            speed = f"{rate:.0f}/s" if rate >= 100 else f"{rate:.1f}/s" if rate >= 1 else f"{rate:.2g}/s"
            eta = _duration(max(0, self.total - self._done) / rate)
        else:
            speed = eta = "?"
        print(f"{self.label} {self._done}/{self.total} ({speed}, ETA {eta})", file=sys.stderr, flush=True)


class _Tracker:
    def __init__(self, prog: Progress, task):
        self.prog, self.task = prog, task

    def advance(self, n: int = 1) -> None:
        self.prog.advance(self.task, n)

    @property
    def completed(self) -> int:
        return int(self.prog.tasks[self.task].completed)

    def to(self, k: int) -> None:
        self.prog.update(self.task, completed=k)


@contextlib.contextmanager
def bar(label: str, total: int, completed: int = 0):
    if not _interactive():
        lines = _Lines(label, total, completed, silent=os.environ.get("LMSI_PROGRESS") == "0")
        try:
            yield lines
        finally:
            lines.say()
        return
    columns = [
        TextColumn(f"[bold]{label:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, transient=False) as prog:
        yield _Tracker(prog, prog.add_task(label, total=total, completed=completed))


def trainer_callbacks(label: str = "train") -> list:
    """Callbacks for a transformers Trainer: off a terminal, one plain line per optimizer step
    (throttled like `bar`); on one, none (the Trainer's own tqdm bar shows)."""
    if _interactive():
        return []
    from transformers import TrainerCallback

    class StepLines(TrainerCallback):
        lines: _Lines | None = None
        began = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.began, self.lines = time.monotonic(), None

        def on_step_end(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            if self.lines is None:  # here, not at train begin: a resumed state is loaded after it
                silent = os.environ.get("LMSI_PROGRESS") == "0"
                self.lines = _Lines(label, state.max_steps, state.global_step - 1, silent, t0=self.began)
            self.lines.to(state.global_step)

        def on_train_end(self, args, state, control, **kwargs):
            if self.lines is not None:
                self.lines.say()
            self.lines = None

    return [StepLines()]
