"""Crash safety: kill -9 a real `lmsi run` (the torch sampler and trainer on a tiny model) at
random points in every stage, resume each time, and compare samples, votes, training set, merged
weights and eval results byte for byte with an uninterrupted run; training resumes from its
checkpoint to the same weights."""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
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
    "eval_base/direct.jsonl",
    "eval_base/summary.json",
    "round_01/eval/greedy_cot.jsonl",
    "round_01/eval/sc.jsonl",
    "round_01/eval/direct.jsonl",
    "round_01/eval/summary.json",
    "round_01/model/model.safetensors",
]
# kills per stage; vote and build take milliseconds, so those strike as the stage before ends
QUOTA = {
    "eval_base": 3,
    "round_01/sample": 3,
    "round_01/vote": 2,
    "round_01/build": 2,
    "round_01/train": 4,
    "round_01/eval": 3,
}
INSTANT = ("round_01/vote", "round_01/build")
# where a stage commits its work: sampling and evaluation append a chunk at a time, training
# saves a checkpoint every step
PROGRESS = {
    "eval_base": "eval_base/*.jsonl",
    "round_01/sample": "round_01/samples.jsonl",
    "round_01/train": "round_01/checkpoints/checkpoint-*",
    "round_01/eval": "round_01/eval/*.jsonl",
}


def _task_files(root: Path) -> tuple[Path, Path]:
    """An unlabeled pool and a disjoint labeled eval set, answers 1-4 like the model's statements."""
    pool, evals = root / "pool.jsonl", root / "eval.jsonl"
    pool.write_text("".join(json.dumps({"question": f"pick {i}", "answer": i % 4 + 1}) + "\n" for i in range(48)))
    evals.write_text(
        "".join(json.dumps({"question": f"which one is case {i}?", "answer": i % 4 + 1}) + "\n" for i in range(48))
    )
    return pool, evals


def _args(model: Path, rd: Path, pool: Path, evals: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lmsi.cli",
        "run",
        "-r",
        str(rd),
        f"model={model}",
        "backend=hf",
        "dtype=float32",
        f"data.task=file:{pool}",
        f"eval.task=file:{evals}",
        "data.limit=48",
        "sample.m=4",
        "sample.batch_rows=8",  # a committed chunk: 2 questions when sampling, 2 (cot) or 8 (direct) in eval
        "sample.max_new_tokens=64",
        "sample.early_stop=true",
        "sample.wave=2",  # early stopping: waves of 2 of the 4 paths, committed a chunk of questions at a time
        "eval.limit=48",
        "eval.sc_m=2",
        "build.threshold=0.5",
        "loop.min_agreement=0",  # a tiny random model's vote is weak; this test is about kills
        "build.max_rows=12",
        "train.batch_size=2",
        "train.epochs=2",
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


def _count(kills: list[tuple[str, int]], stage: str) -> int:
    return sum(s == stage for s, _ in kills)


def _committed(rd: Path, stage: str) -> int:
    """Work a stage has committed: rows written, or the newest checkpoint's step."""
    pattern = PROGRESS.get(stage)
    if pattern is None:
        return 0
    if pattern.endswith("checkpoint-*"):
        return max((int(p.name.rsplit("-", 1)[1]) for p in rd.glob(pattern)), default=0)
    return sum(p.read_bytes().count(b"\n") for p in rd.glob(pattern))  # whole lines only


class _Run:
    """One `lmsi run` process. Its log is read as it comes; with `freeze_after`, the line saying
    that stage is done (or skipped, on a resume) freezes the process (SIGSTOP) `delay` seconds
    later, so a kill can strike the millisecond-long stage that follows."""

    def __init__(self, args: list[str], env: dict, freeze_after: str | None = None, delay: float = 0.0):
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.frozen = threading.Event()
        self.log: collections.deque[str] = collections.deque(maxlen=40)
        threading.Thread(target=self._read, args=(freeze_after, delay), daemon=True).start()

    def _read(self, after: str | None, delay: float) -> None:
        marks = (f"[done] {after} ", f"[skip] {after} ") if after else ()
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            if any(m in line for m in marks) and not self.frozen.is_set():
                time.sleep(delay)
                self.proc.send_signal(signal.SIGSTOP)
                self.frozen.set()
            self.log.append(line)


@pytest.mark.slow
def test_kill_nine_anywhere_then_resume_is_byte_identical(answer_model_dir, tmp_path):
    """The real torch sampler draws the samples and the evaluations (greedy and sampled paths) and
    the real trainer trains. The model's vocabulary holds whole answer statements, so its paths
    state answers, votes agree and the training set is not empty (a random byte-level model never
    writes 'The answer is N', and build would find no confident question)."""
    pool, evals = _task_files(tmp_path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}  # 32-wide matmuls: one thread is faster
    ref = tmp_path / "ref"
    t0 = time.time()
    subprocess.run(_args(answer_model_dir, ref, pool, evals), env=env, check=True, capture_output=True, timeout=600)
    seconds = {s: v["seconds"] for s, v in json.loads((ref / "manifest.json").read_text())["stages"].items()}
    rd = tmp_path / "killed"
    rng = random.Random(0)
    kills: list[tuple[str, int]] = []  # (the stage the run was in, the work it had committed there)
    for _ in range(60):
        target = next((s for s in STAGE_ORDER if _count(kills, s) < QUOTA[s] and s not in _done(rd)), None)
        if target is None:
            break
        if target in INSTANT and _count(kills, target):
            # every instant stage gets its first, undelayed kill before any delayed one: a delayed
            # vote kill may strike only after build is done too, and build would go without a kill
            target = next((s for s in INSTANT if not _count(kills, s) and s not in _done(rd)), target)
        before = STAGE_ORDER[STAGE_ORDER.index(target) - 1] if target in INSTANT else None
        committed = _committed(rd, target)
        started = time.time()
        # vote and build: frozen as the stage before them is recorded done (or skipped): the
        # first kill at once, which lands as the stage starts, later ones 0-10 ms on, which lands
        # inside its writes (a temporary file written, or renamed but not recorded) or just after
        delay = rng.uniform(0, 0.01) if before and _count(kills, target) else 0.0
        run = _Run(_args(answer_model_dir, rd, pool, evals), env, freeze_after=before, delay=delay)
        proc = run.proc
        if before:
            while not run.frozen.wait(0.01) and proc.poll() is None and time.time() - started < 120:
                pass
        else:
            # strike once the run is past start-up (config.yaml rewritten) and in the target stage
            # (after the stage's first kill: once this attempt has committed more work there, a
            # chunk of samples or evaluations or a checkpoint, so each resume starts further on),
            # at a random moment within 1/quota of the uninterrupted run's stage time, or at the
            # latest as the stage ends, so no stage is ever skipped
            deadline = None
            while proc.poll() is None and time.time() - started < 120:
                config = rd / "config.yaml"
                here = _running(rd) if config.exists() and config.stat().st_mtime >= started else None
                if deadline is None and here is not None and _index(here) >= _index(target):
                    if here != target or not _count(kills, target):
                        deadline = time.time() + rng.uniform(0, seconds[target] / QUOTA[target])
                    elif _committed(rd, target) > committed:
                        # a resume has committed more work: strike within 50 ms, so the next
                        # resume starts from it (a delay scaled to the uninterrupted run's stage
                        # time let a faster attempt finish the stage first under changing load)
                        deadline = time.time() + rng.uniform(0, 0.05)
                if deadline is not None and (here != target or time.time() >= deadline):
                    break
                time.sleep(0.005)
            proc.send_signal(signal.SIGSTOP)
        if proc.poll() is not None:
            assert proc.returncode == 0, "".join(run.log)
            break  # the run finished before the strike
        where = _running(rd)  # the run is frozen (SIGSTOP): this is where the kill lands
        kills.append((where, _committed(rd, where)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = subprocess.run(
        _args(answer_model_dir, rd, pool, evals), env=env, capture_output=True, text=True, timeout=600
    )
    assert final.returncode == 0, final.stderr[-2000:]
    landed = {s: _count(kills, s) for s in STAGE_ORDER + ["report"]}
    print(f"survived {len(kills)} kills in {time.time() - t0:.0f}s: {landed}")
    print("work committed in the stage at each kill:", [(s.removeprefix("round_01/"), n) for s, n in kills])
    left = sorted(str(p.relative_to(rd)) for p in rd.rglob("*.tmp"))
    assert not left, f"temporary files of writes the kills tore, not cleared by the resume: {left}"
    assert all(landed[s] > 0 for s in STAGE_ORDER), (
        f"{landed} (vote and build kills wait for the '[done] <stage>' line)"
    )
    # some resume in each slow stage started from committed work: a partial file, a checkpoint
    assert all(any(s == stage and n > 0 for s, n in kills) for stage in PROGRESS), kills
    for f in COMPARE:
        assert (rd / f).read_bytes() == (ref / f).read_bytes(), f"{f} differs after kills at {landed}"
    # nothing lost, nothing duplicated, nothing left half done
    for f in ("round_01/samples.jsonl", "eval_base/sc.jsonl", "eval_base/direct.jsonl", "round_01/eval/sc.jsonl"):
        ids = [json.loads(line)["id"] for line in (rd / f).read_text().splitlines()]
        assert len(ids) == len(set(ids)) == 48, f
    assert not list(rd.rglob("*.partial.jsonl")) and not (rd / "round_01/checkpoints").exists()


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
