"""Crash safety: kill -9 a real `lmsi run` at random points in every stage, resume each
time, and compare the final training set and eval results byte for byte with an
uninterrupted run; training resumes from its checkpoint to the same weights."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

STAGE_ORDER = ["eval_base", "round_01/sample", "round_01/vote", "round_01/build", "round_01/train", "round_01/eval"]
COMPARE = [
    "round_01/samples.jsonl",
    "round_01/votes.jsonl",
    "round_01/train.jsonl",
    "eval_base/greedy_cot.jsonl",
    "eval_base/sc.jsonl",
    "round_01/eval/greedy_cot.jsonl",
    "round_01/eval/sc.jsonl",
    "round_01/eval/direct.jsonl",
    "round_01/eval/summary.json",
    "round_01/model/model.safetensors",
]


def _args(model, rd):
    return [
        sys.executable,
        "-m",
        "lmsi.cli",
        "run",
        "-r",
        str(rd),
        f"model={model}",
        "backend=fake",
        "data.limit=12",
        "sample.m=4",
        "sample.batch_rows=8",
        "eval.limit=12",
        "eval.sc_m=2",
        "build.threshold=0.5",
        "build.max_rows=24",
        "train.batch_size=2",
        "train.epochs=3",
        "train.save_steps=1",
        "seed=7",
    ]


def _done(rd: Path) -> set[str]:
    try:
        return set(json.loads((rd / "manifest.json").read_text())["stages"])
    except (FileNotFoundError, ValueError):
        return set()


def _running(rd: Path) -> str:
    done = _done(rd)
    return next((s for s in STAGE_ORDER if s not in done), "report")


def _index(stage: str) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)


@pytest.mark.slow
def test_kill_nine_anywhere_then_resume_is_byte_identical(tiny_model_dir, tmp_path):
    env = {**os.environ, "LMSI_FAKE_DELAY": "0.25", "PYTHONUNBUFFERED": "1"}
    ref = tmp_path / "ref"
    subprocess.run(_args(tiny_model_dir, ref), env=env, check=True, capture_output=True, timeout=600)
    rd = tmp_path / "killed"
    rng = random.Random(0)
    # kills per stage, and how long after the stage starts a kill may land (vote and build take
    # milliseconds, so those kills strike the moment the previous stage is recorded as done)
    quota = {
        "eval_base": 4,
        "round_01/sample": 4,
        "round_01/vote": 2,
        "round_01/build": 2,
        "round_01/train": 6,
        "round_01/eval": 6,
    }
    window = {
        "eval_base": 1.5,
        "round_01/sample": 1.0,
        "round_01/vote": 0,
        "round_01/build": 0,
        "round_01/train": 3.0,
        "round_01/eval": 1.5,
    }
    kills: list[str] = []
    for _ in range(60):
        target = next((s for s in STAGE_ORDER if kills.count(s) < quota[s] and s not in _done(rd)), None)
        if target is None:
            break
        started = time.time()
        proc = subprocess.Popen(
            _args(tiny_model_dir, rd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # strike only once the run is past start-up (config.yaml rewritten) and in the target stage
        while (
            proc.poll() is None
            and time.time() - started < 120
            and (
                not (rd / "config.yaml").exists()
                or (rd / "config.yaml").stat().st_mtime < started
                or _index(_running(rd)) < _index(target)
            )
        ):
            time.sleep(0.005)
        time.sleep(rng.uniform(0, window[target]))
        where = _running(rd)
        if proc.poll() is not None:
            break  # the run finished before the strike
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append(where)
    final = subprocess.run(_args(tiny_model_dir, rd), env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    landed = {s: kills.count(s) for s in STAGE_ORDER + ["report"]}
    print(f"survived {len(kills)} kills: {landed}")
    assert len(kills) >= 20, landed
    assert all(landed[s] > 0 for s in ("eval_base", "round_01/sample", "round_01/train", "round_01/eval")), landed
    for f in COMPARE:
        assert (rd / f).read_bytes() == (ref / f).read_bytes(), f"{f} differs after kills at {landed}"
    ids = [json.loads(l)["id"] for l in (rd / "round_01/samples.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 12  # nothing lost, nothing duplicated


def test_training_resumes_from_checkpoint_to_identical_weights(tiny_model_dir, tmp_path, monkeypatch):
    from transformers import Trainer

    from lmsi.config import TrainConfig
    from lmsi.io import write_jsonl
    from lmsi.models import load_model
    from lmsi.train import latest_checkpoint, run_train

    rows = [
        {"prompt": f"Q: {i} + {i}?\nA:", "completion": f" {i} + {i} = {2 * i}. The answer is {2 * i}."}
        for i in range(8)
    ]
    cfg = TrainConfig(batch_size=2, epochs=2, save_steps=2)
    for name in ("a", "b"):
        write_jsonl(tmp_path / name / "train.jsonl", rows)
    run_train(*load_model(str(tiny_model_dir), "float32"), tmp_path / "a", cfg, seed=3)

    original = Trainer._save_checkpoint

    def crash_after_step_4(self, *a, **kw):
        original(self, *a, **kw)
        if self.state.global_step == 4:
            raise KeyboardInterrupt  # killed right after the step-4 checkpoint

    monkeypatch.setattr(Trainer, "_save_checkpoint", crash_after_step_4)
    with pytest.raises(KeyboardInterrupt):
        run_train(*load_model(str(tiny_model_dir), "float32"), tmp_path / "b", cfg, seed=3)
    monkeypatch.setattr(Trainer, "_save_checkpoint", original)
    ckpt = tmp_path / "b" / "checkpoints"
    (ckpt / "checkpoint-6").mkdir()  # a torn save: no trainer state, must be ignored
    assert latest_checkpoint(ckpt).name == "checkpoint-4" and not (ckpt / "checkpoint-6").exists()
    run_train(*load_model(str(tiny_model_dir), "float32"), tmp_path / "b", cfg, seed=3)
    a = (tmp_path / "a/model/model.safetensors").read_bytes()
    assert a == (tmp_path / "b/model/model.safetensors").read_bytes()
    assert not ckpt.exists()  # checkpoints are removed once the merged model is saved


def test_models_are_put_on_the_gpu_when_there_is_one(tiny_model_dir, monkeypatch):
    """Before this, a GPU box sampled and evaluated on its CPU (found on an H100)."""
    import torch

    from lmsi.models import load_model

    moved = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: moved.append(a) or self)
    load_model(str(tiny_model_dir), "float32")
    assert ("cuda",) in moved


def test_training_batches_whole_on_gpu_and_one_row_at_a_time_on_cpu(monkeypatch):
    import torch

    from lmsi.train import batch_shape

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert batch_shape(16) == {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 16}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert batch_shape(16) == {"per_device_train_batch_size": 16, "gradient_accumulation_steps": 1}
