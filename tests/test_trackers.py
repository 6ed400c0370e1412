"""Per-round metrics reach a real local tracker (train.report_to): TensorBoard event files and an
MLflow file store under the run directory, read back and checked against the run's own files;
a resumed run sends each round once. Tiny sizes: fake sampler + real LoRA training of a tiny model."""

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from test_rounds import TINY as ROUNDS_TINY

from lmsi.config import ConfigError, load_config
from lmsi.pipeline import Pipeline
from lmsi.tasks import task_from_data

TINY = [*ROUNDS_TINY, "build.threshold=0.5", "loop.stop=false"]
TASK = task_from_data("arith", {})


def _cfg(rd: Path, model: str, tracker: str, rounds: int):
    return load_config(
        overrides=[f"run_dir={rd}", f"model={model}", f"train.report_to={tracker}", f"loop.rounds={rounds}", *TINY]
    )


def _run(cfg, force=False):
    Pipeline(cfg, force=force, log=lambda m: None).run()


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def _expected(rd: Path, rounds: int, threshold: float = 0.5) -> dict:
    """What each step should hold, read straight from the run's files (not through lmsi.stats)."""
    out = {}
    for k in range(rounds + 1):
        ev = rd / "eval_base" if k == 0 else rd / f"round_{k:02d}" / "eval"
        summary = json.loads((ev / "summary.json").read_text())
        step = {f"heldout/{m}": s["accuracy"] for m, s in summary.items() if isinstance(s, dict) and "accuracy" in s}
        sc = _jsonl(ev / "sc.jsonl")
        top = [max(Counter(a for a in r["answers"] if a is not None).values(), default=0) for r in sc]
        step["label_free/agreement_eval"] = sum(t / len(r["answers"]) for t, r in zip(top, sc)) / len(sc)
        if k:
            votes = _jsonl(rd / f"round_{k:02d}" / "votes.jsonl")
            kept = [v for v in votes if v["answer"] is not None and v["confidence"] >= threshold]
            step["label_free/questions"] = len(votes)
            step["label_free/kept"] = len(kept)
            step["label_free/mean_confidence"] = sum(v["confidence"] for v in votes) / len(votes)
            step["label_free/distinct_answers"] = sum(v["distinct"] for v in votes) / len(votes)
            gold = [v for v in kept if v.get("gold") is not None]
            if gold:
                right = [TASK.is_correct(v["answer"], v["gold"]) for v in gold]
                step["diagnostic/pseudo_label_accuracy"] = sum(right) / len(right)
        out[k] = step
    return out


def _check(logged: dict[str, list[tuple[int, float]]], expected: dict) -> None:
    for tag, points in logged.items():
        steps = [s for s, _ in points]
        assert len(steps) == len(set(steps)), f"{tag} logged twice at a step: {steps}"
    for k, step in expected.items():
        for tag, value in step.items():
            got = dict(logged.get(tag, []))
            assert k in got, f"{tag} missing at step {k}; logged: {sorted(logged)}"
            assert got[k] == pytest.approx(value, abs=1e-6), (tag, k)


def test_report_to_takes_only_supported_trackers():
    with pytest.raises(ConfigError, match=r"train.report_to.*tensorboard.*mlflow.*trackio.*wandb"):
        load_config(overrides=["train.report_to=comet"])


def test_missing_tracker_library_fails_at_start_naming_the_extra(tmp_path, monkeypatch):
    for name in ("tensorboard", "torch.utils.tensorboard", "mlflow"):
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError
    for tracker in ("tensorboard", "mlflow"):
        with pytest.raises(ConfigError, match=r"report_to.*lmsi\[trackers\]"):
            Pipeline(_cfg(tmp_path / tracker, "unused", tracker, 1), log=lambda m: None)
        assert not (tmp_path / tracker / "manifest.json").exists()


def _tensorboard(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in every event file under folder, duplicates kept."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    out: dict = {}
    for f in sorted(folder.glob("events.out.tfevents.*")):
        for ev in EventFileLoader(str(f)).Load():
            for v in ev.summary.value:
                value = tensor_util.make_ndarray(v.tensor) if v.HasField("tensor") else v.simple_value
                if getattr(value, "shape", ()) == () and getattr(value, "dtype", float).kind in "fiu":  # not text
                    out.setdefault(v.tag, []).append((ev.step, float(value)))
    return out


def _clean_env(monkeypatch, *names):
    """Unset, and restored after the test (the pipeline sets what the user left unset)."""
    for var in names:
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)


def test_tensorboard_gets_each_round_once(tiny_model_dir, tmp_path, monkeypatch):
    _clean_env(monkeypatch, "TENSORBOARD_LOGGING_DIR")
    rd = tmp_path / "r"
    _run(_cfg(rd, tiny_model_dir, "tensorboard", 1))
    _run(_cfg(rd, tiny_model_dir, "tensorboard", 1))  # finished: nothing new to send
    _run(_cfg(rd, tiny_model_dir, "tensorboard", 2), force=True)  # resumed with one more round
    logged = _tensorboard(rd / "tracking" / "tensorboard")
    _check(logged, _expected(rd, 2))
    assert sorted(s for s, _ in logged["heldout/greedy_cot"]) == [0, 1, 2]
    # the trainer's loss lands beside them, one folder per training stage (not in deleted checkpoints)
    for k in (1, 2):
        assert "train/loss" in _tensorboard(rd / "tracking" / "tensorboard" / "train" / f"round_{k:02d}")


def test_mlflow_file_store_gets_each_round_once(tiny_model_dir, tmp_path, monkeypatch):
    _clean_env(monkeypatch, "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "MLFLOW_ALLOW_FILE_STORE")
    rd = tmp_path / "r"
    _run(_cfg(rd, tiny_model_dir, "mlflow", 1))
    _run(_cfg(rd, tiny_model_dir, "mlflow", 1))
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(rd / "tracking" / "mlruns").resolve().as_uri())
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    ours = [r for r in runs if "label_free/kept" in r.data.metrics]
    assert len(ours) == 1, [r.info.run_name for r in runs]
    rid = ours[0].info.run_id
    logged = {t: [(m.step, m.value) for m in client.get_metric_history(rid, t)] for t in ours[0].data.metrics}
    _check(logged, _expected(rd, 1))
