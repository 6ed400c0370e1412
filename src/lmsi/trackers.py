"""Each round's numbers to the tracker named by train.report_to, one step per round (0 = the base model).

    tracker = Tracker("tensorboard", RunDir("runs/x"))   # fails here if the library is missing
    tracker.send(0); tracker.send(1); tracker.close()

A step holds what report.md shows for that round, read from the run directory once the round has
finished: held-out accuracy per eval mode (heldout/<mode>), agreement on the eval questions, and
the round's vote (questions, kept, mean confidence, distinct answers per question; label_free/*),
plus the pseudo-label accuracy where gold exists (diagnostic/*). Output goes to run_dir/tracking/
unless the tracker's own environment variables point elsewhere; the trainer's loss goes to the same
place. Sent steps are listed in tracking/sent.json, so a resumed run sends each round once.
"""

from __future__ import annotations

import importlib
import os
import time

from .config import ConfigError
from .io import read_json, write_json
from .rundir import RunDir
from .stats import probe_agreement, pseudo_label_stats

# the module each needs, and the pip install that brings it
NEEDS = {  # per train.report_to value but none (config.TRACKERS)
    "tensorboard": ("torch.utils.tensorboard", "lmsi[trackers]"),
    "mlflow": ("mlflow", "lmsi[trackers]"),
    "trackio": ("trackio", "lmsi[trackio]"),
    "wandb": ("wandb", "lmsi[wandb]"),
}
_SET: dict[str, str] = {}  # the environment variables this process set, so a later run may set them anew


def _ours(var: str) -> bool:
    """Whether lmsi may set `var`: the user has not (an earlier run in this process may have)."""
    return os.environ.get(var, _SET.get(var)) == _SET.get(var)


def _set(var: str, value: str) -> None:
    os.environ[var] = _SET[var] = value


def round_metrics(run: RunDir, k: int) -> dict[str, float]:
    """Step k's scalars: the model after round k on the eval split (k=0: the model the rounds
    start from), and round k's vote, sampled by round k-1's model."""
    ev = run.base_eval if k == 0 else run.eval_dir(k)
    out = {f"heldout/{m}": s["accuracy"] for m, s in (run.summary(ev) or {}).items() if "accuracy" in s}
    agree = probe_agreement(ev)
    if agree is not None:
        out["label_free/agreement_eval"] = agree
    votes = run.rows(run.round_dir(k), "votes") if k else []
    if votes:
        s = pseudo_label_stats(votes, run.config["build"]["threshold"], run.task)
        out |= {
            "label_free/questions": s["questions"],
            "label_free/kept": s["kept"],
            "label_free/mean_confidence": s["mean_confidence"],
            "label_free/distinct_answers": s["mean_distinct_answers"],
        }
        if s["pseudo_label_accuracy"] is not None:
            out["diagnostic/pseudo_label_accuracy"] = s["pseudo_label_accuracy"]
    return out


class Tracker:
    def __init__(self, name: str, run: RunDir):
        self.name, self.run, self.folder = name, run, run.path / "tracking"
        self._sink = None
        if name == "none":
            return
        module, extra = NEEDS[name]
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(
                f"config key 'train.report_to' is {name!r}, but {module} is not installed: pip install '{extra}'"
            ) from None
        if name == "mlflow" and _ours("MLFLOW_TRACKING_URI"):
            # a file store in the run: MLflow 3 keeps it in maintenance mode behind this switch
            _set("MLFLOW_TRACKING_URI", (self.folder / "mlruns").resolve().as_uri())
            _set("MLFLOW_ALLOW_FILE_STORE", "true")
        if name == "mlflow" and _ours("MLFLOW_EXPERIMENT_NAME"):
            _set("MLFLOW_EXPERIMENT_NAME", "lmsi")
        if name in ("wandb", "trackio") and _ours("WANDB_PROJECT"):
            _set("WANDB_PROJECT", "lmsi")

    def before_train(self, rel: str) -> None:
        """The trainer's TensorBoard events for one training stage (rel: round_01, round_01/draw_1)
        go beside the round metrics instead of the checkpoints folder, which is deleted after training."""
        if self.name == "tensorboard" and _ours("TENSORBOARD_LOGGING_DIR"):
            _set("TENSORBOARD_LOGGING_DIR", str(self.folder / "tensorboard" / "train" / rel))

    def send(self, k: int) -> None:
        """Send step k unless an earlier session did; call it once round k has finished."""
        if self.name == "none":
            return
        sent = read_json(self.folder / "sent.json") or {}
        if k in sent.get(self.name, []):
            return
        metrics = round_metrics(self.run, k)
        if metrics:
            self._open().log(metrics, k)
        write_json(self.folder / "sent.json", {**sent, self.name: sorted({*sent.get(self.name, []), k})})

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def _open(self):
        if self._sink is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._sink = SINKS[self.name](self.folder, self.run.path.name)
        return self._sink


class _TensorBoard:
    def __init__(self, folder, run_name: str):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder / "tensorboard"))

    def log(self, metrics: dict, step: int) -> None:
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _MLflow:
    """One MLflow run per lmsi run (its id kept in tracking/mlflow.json, so a resume continues it);
    the trainer's callback logs each training stage as a run of its own in the same experiment."""

    def __init__(self, folder, run_name: str):
        from mlflow.tracking import MlflowClient

        self.client, state = MlflowClient(), folder / "mlflow.json"
        saved = read_json(state) or {}
        if saved.get("tracking_uri") == self.client.tracking_uri:
            self.run_id = saved["run_id"]
        else:
            name = os.environ["MLFLOW_EXPERIMENT_NAME"]
            exp = self.client.get_experiment_by_name(name)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(name)
            self.run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id
            write_json(state, {"tracking_uri": self.client.tracking_uri, "run_id": self.run_id})

    def log(self, metrics: dict, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(t, float(v), now, step) for t, v in metrics.items()])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class _Wandb:
    """Round metrics on their own x-axis ("round"), so the trainer's steps in the same run do not clash."""

    def __init__(self, folder, run_name: str):
        import wandb

        state = folder / "wandb.json"
        run_id = (read_json(state) or {}).get("id") or wandb.util.generate_id()
        write_json(state, {"id": run_id})
        self.wandb = wandb
        self.run = wandb.init(
            project=os.environ["WANDB_PROJECT"],
            name=run_name,
            id=run_id,
            resume="allow",
            dir=os.environ.get("WANDB_DIR", str(folder)),
        )
        self.run.define_metric("round")
        for prefix in ("heldout", "label_free", "diagnostic"):
            self.run.define_metric(f"{prefix}/*", step_metric="round")

    def log(self, metrics: dict, step: int) -> None:
        self.run.log({**metrics, "round": step})

    def close(self) -> None:
        self.run.finish()


class _Trackio:
    def __init__(self, folder, run_name: str):
        import trackio

        self.trackio = trackio
        trackio.init(project=os.environ["WANDB_PROJECT"], name=run_name, resume="allow")

    def log(self, metrics: dict, step: int) -> None:
        self.trackio.log(metrics, step=step)

    def close(self) -> None:
        self.trackio.finish()


SINKS = {"tensorboard": _TensorBoard, "mlflow": _MLflow, "wandb": _Wandb, "trackio": _Trackio}
