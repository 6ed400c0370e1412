"""Off a terminal (nohup, CI) `lmsi` logs one plain progress line per committed chunk of each
stage (done/total, rate, ETA), throttled, and no third-party bars or deprecation warnings;
LMSI_VERBOSE=1 lets the libraries' bars and warnings back. Real subprocesses, no TTY."""

import os
import re
import subprocess
import sys
import warnings
from types import SimpleNamespace

import pytest

from lmsi import progress
from lmsi.progress import quiet_libraries

TINY = [
    "data.limit=3",
    "sample.m=3",
    "sample.max_new_tokens=8",
    "eval.limit=2",
    "eval.sc_m=2",
    "train.batch_size=2",
    "build.threshold=0.0",
    "backend=fake",
]
OURS = ("LMSI_VERBOSE", "LMSI_PROGRESS", "LMSI_PROGRESS_EVERY")
THEIRS = ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")
NOISE = ("FutureWarning", "DeprecationWarning", "it/s]", "s/it]", "Loading weights", "Writing model shards", "\r")


@pytest.fixture
def clean_env(monkeypatch):
    """No lmsi or library switches set; whatever the test sets is undone after it."""
    for k in OURS + THEIRS:
        monkeypatch.setenv(k, "")
        monkeypatch.delenv(k)


def _lmsi(args: list[str], **env: str) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if k not in OURS + THEIRS and k != "PYTHONWARNINGS"}
    r = subprocess.run(
        [sys.executable, "-m", "lmsi.cli", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=900,
    )
    return r.returncode, r.stdout + r.stderr


def _lines(out: str, label: str, total: int) -> list[str]:
    """Plain progress lines of one stage: `label done/total (rate, ETA ...)`."""
    pat = re.compile(rf"^{re.escape(label)} +(\d+)/{total} \((\S+/s|\?), ETA \S+\)$")
    return [line for line in out.splitlines() if pat.match(line.strip())]


def test_run_off_a_terminal_logs_plain_progress_and_no_library_noise(tiny_model_dir, tmp_path):
    rc, out = _lmsi(["run", "-r", str(tmp_path / "r"), f"model={tiny_model_dir}", *TINY])
    assert rc == 0, out
    sample = _lines(out, "sample", 3)
    assert sample and sample[-1].strip().startswith("sample 3/3 "), out
    evals = _lines(out, "greedy_cot + sc", 2)  # the base eval and round 1's eval
    assert len([line for line in evals if " 2/2 " in line]) == 2, out
    assert _lines(out, "direct", 2), out
    for noise in NOISE:
        assert noise not in out, (noise, out)
    # training made its FutureWarnings and tqdm bars before the fix; the run still reached its end
    assert (tmp_path / "r" / "round_01" / "model").is_dir() and "report:" in out


def test_verbose_brings_back_the_weight_loading_bar(tiny_model_dir, tmp_path):
    args = ["eval", "--task", "arith", "--model", str(tiny_model_dir), "--limit", "2", "backend=hf"]
    rc, quiet = _lmsi([*args, "-r", str(tmp_path / "q"), "sample.max_new_tokens=4"])
    assert rc == 0, quiet
    assert "Loading weights" not in quiet and "it/s]" not in quiet, quiet
    assert [line.strip() for line in _lines(quiet, "greedy_cot", 2)][-1].startswith("greedy_cot 2/2 "), quiet
    rc, loud = _lmsi([*args, "-r", str(tmp_path / "v"), "sample.max_new_tokens=4"], LMSI_VERBOSE="1")
    assert rc == 0, loud
    assert "Loading weights" in loud, loud


def test_quiet_libraries_filters_their_deprecations_and_bars(clean_env, monkeypatch):
    monkeypatch.setattr(progress, "_interactive", lambda: False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_libraries()
        for mod in ("transformers.training_args", "trl.trainer.grpo_config", "peft.tuners", "torch.utils"):
            warnings.warn_explicit("`x` is deprecated", FutureWarning, "f.py", 1, module=mod)
            warnings.warn_explicit("`x` is deprecated", DeprecationWarning, "f.py", 1, module=mod)
        warnings.warn_explicit("a real problem", UserWarning, "f.py", 1, module="transformers.trainer")
        warnings.warn_explicit("ours", FutureWarning, "f.py", 1, module="somebody_else")
    assert [str(w.message) for w in seen] == ["a real problem", "ours"]
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1" and os.environ["TQDM_DISABLE"] == "1"


def test_verbose_leaves_libraries_alone(clean_env, monkeypatch):
    monkeypatch.setenv("LMSI_VERBOSE", "1")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_libraries()
        warnings.warn_explicit("`x` is deprecated", FutureWarning, "f.py", 1, module="transformers.training_args")
    assert len(seen) == 1
    assert not any(k in os.environ for k in THEIRS)


def test_a_terminal_keeps_the_trainer_bar(clean_env, monkeypatch):
    monkeypatch.setattr(progress, "_interactive", lambda: True)
    with warnings.catch_warnings():
        quiet_libraries()
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1" and "TQDM_DISABLE" not in os.environ


def test_plain_lines_are_throttled(clean_env, monkeypatch, capsys):
    monkeypatch.setattr(progress, "_interactive", lambda: False)
    monkeypatch.setenv("LMSI_PROGRESS_EVERY", "3600")
    with progress.bar("sample", total=1000) as t:
        for _ in range(1000):
            t.advance(1)
        assert t.completed == 1000
    lines = capsys.readouterr().err.splitlines()
    assert 1 <= len(lines) <= 2 and lines[-1].startswith("sample 1000/1000 ("), lines
    with progress.bar("sample", total=5, completed=5):  # a finished stage resumed: nothing to say
        pass
    assert capsys.readouterr().err == ""


def test_trainer_step_lines_count_a_resumed_run_from_its_checkpoint(clean_env, monkeypatch, capsys):
    monkeypatch.setattr(progress, "_interactive", lambda: True)
    assert progress.trainer_callbacks() == []  # a terminal: the Trainer's own bar
    monkeypatch.setattr(progress, "_interactive", lambda: False)
    monkeypatch.setenv("LMSI_PROGRESS_EVERY", "0")
    (cb,) = progress.trainer_callbacks()
    state = SimpleNamespace(is_world_process_zero=True, max_steps=10, global_step=0)
    cb.on_train_begin(None, state, None)  # the Trainer loads a resumed state after this
    for step in (7, 8, 9, 10):
        state.global_step = step
        cb.on_step_end(None, state, None)
    cb.on_train_end(None, state, None)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in lines] == ["train 7/10", "train 8/10", "train 9/10", "train 10/10"]
    assert all(re.search(r"\((\S+/s), ETA \S+\)$", line) for line in lines), lines
