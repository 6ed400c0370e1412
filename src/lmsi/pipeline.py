"""One self-improvement round, stage by stage, over one run directory.

    from lmsi.config import load_config
    from lmsi.pipeline import Pipeline
    Pipeline(load_config(overrides=["sample.m=4"])).run()

Layout:  run_dir/config.yaml, manifest.json, eval_base/, round_01/{samples,votes,train}.jsonl,
round_01/{adapter,model}/, round_01/eval/, report.md, report.png. Finished stages are
recorded in manifest.json and skipped on rerun.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import yaml

from .config import ConfigError, RunConfig, diff_configs
from .io import InputError, Manifest, atomic_write_text, write_json

STAGES = ("eval_base", "sample", "vote", "build", "train", "eval", "report")
ROUND = "round_01"


class Pipeline:
    def __init__(self, cfg: RunConfig, force: bool = False, log=print):
        self.cfg, self.log = cfg, log
        self.run_dir = Path(cfg.run_dir)
        self.round_dir = self.run_dir / ROUND
        self._check_config(force)
        self.manifest = Manifest(self.run_dir)
        from .tasks import get_task

        d = cfg.data
        kw = {"question_field": d.question_field, "answer_field": d.answer_field} if d.task.startswith("file:") else {}
        self.task = get_task(d.task, **kw)
        self._models: dict[str, object] = {}

    # -- config echo and resume guard -----------------------------------
    def _check_config(self, force: bool) -> None:
        path = self.run_dir / "config.yaml"
        new = self.cfg.to_dict()
        if path.exists():
            old = yaml.safe_load(path.read_text())
            diff = diff_configs(old, new)
            if diff and not force:
                raise ConfigError(
                    f"{self.run_dir} was started with a different config; differing keys:\n  " + "\n  ".join(diff)
                    + "\nuse a new run_dir, or --force to continue anyway")
        atomic_write_text(path, yaml.safe_dump(new, sort_keys=False))
        write_json(self.run_dir / "config.json", new)

    # -- data -----------------------------------------------------------
    @functools.cached_property
    def questions(self):
        d = self.cfg.data
        qs = self.task.load(d.split, d.limit or None)
        if not qs:
            raise InputError(f"task {d.task!r} split {d.split!r} has no questions")
        return qs

    @functools.cached_property
    def eval_examples(self):
        e = self.cfg.eval
        if self.cfg.data.task.startswith("file:"):
            return []
        exs = self.task.load(e.split, e.limit or None)
        train_q = {q.question.strip().lower() for q in self.questions}
        overlap = [x.id for x in exs if x.question.strip().lower() in train_q]
        if overlap:
            raise InputError(f"{len(overlap)} eval questions also appear in the unlabeled pool (e.g. {overlap[:3]}); "
                             "pick disjoint splits")
        return exs

    # -- models ---------------------------------------------------------
    def model(self, which: str):
        """'base' or 'tuned' -> (model, tokenizer); one model in memory at a time."""
        if which not in self._models:
            from .models import load_model

            self._models.clear()
            spec = self.cfg.model if which == "base" else str(self.round_dir / "model")
            self.log(f"loading {which} model: {spec}")
            self._models[which] = load_model(spec, self.cfg.dtype, self.cfg.trust_remote_code)
        return self._models[which]

    def sampler(self, which: str):
        from .backends import get_sampler

        if self.cfg.backend == "fake":
            return get_sampler("fake", None)
        model, tok = self.model(which)
        return get_sampler(self.cfg.backend, model, tokenizer=tok, batch_rows=self.cfg.sample.batch_rows)

    # -- stages ---------------------------------------------------------
    def stage(self, name: str, force: bool = False) -> None:
        key = name if name in ("eval_base", "report") else f"{ROUND}/{name}"
        if self.manifest.done(key) and not force and name != "report":
            self.log(f"[skip] {key} (done)")
            return
        need = {"vote": "sample", "build": "vote", "train": "build", "eval": "train"}.get(name)
        if need and not self.manifest.done(f"{ROUND}/{need}"):
            raise RuntimeError(f"stage {name!r} needs stage {need!r} first (lmsi {need} or lmsi run)")
        t = time.time()
        info = getattr(self, f"_{name}")() or {}
        if name != "report":
            self.manifest.mark(key, time.time() - t, **info)
            self.log(f"[done] {key} in {time.time() - t:.0f}s")

    def _evaluate(self, which: str, out_dir: Path):
        from .evaluate import run_eval

        s = self.cfg.sample
        summary = run_eval(self.task, self.sampler(which), self.eval_examples, out_dir, self.cfg.eval,
                           s.shots, s.max_new_tokens, self.cfg.seed)
        return {"accuracy": {k: v["accuracy"] for k, v in summary.items() if "accuracy" in v}}

    def _eval_base(self):
        return self._evaluate("base", self.run_dir / "eval_base")

    def _sample(self):
        from .sample import run_sample

        rows = run_sample(self.task, self.sampler("base"), self.questions, self.round_dir, self.cfg.sample, self.cfg.seed)
        return {"questions": len(rows)}

    def _vote(self):
        from .vote import run_vote

        rows = run_vote(self.round_dir)
        return {"confident": sum(r["confidence"] >= self.cfg.build.threshold for r in rows)}

    def _build(self):
        from .build import run_build

        rows = run_build(self.task, self.round_dir, self.cfg.build, self.cfg.build.shots, self.cfg.seed)
        return {"rows": len(rows)}

    def _train(self):
        from .train import run_train

        model, tok = self.model("base")
        self._models.clear()  # training mutates it
        run_train(model, tok, self.round_dir, self.cfg.train, self.cfg.seed)

    def _eval(self):
        return self._evaluate("tuned", self.round_dir / "eval")

    def _report(self):
        from .report import build_report

        self.table = build_report(self.run_dir)

    def run(self) -> str:
        stages = STAGES if self.eval_examples else tuple(s for s in STAGES if s not in ("eval_base", "eval"))
        for name in stages:
            self.stage(name)
        return self.table
