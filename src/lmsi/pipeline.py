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
        self.task = self._make_task(cfg.data.task)
        self.eval_task = self._make_task(cfg.eval.task) if cfg.eval.task else self.task
        self._models: dict[str, object] = {}

    def _make_task(self, name: str):
        from .tasks import get_task

        d = self.cfg.data
        if not name.startswith(("file:", "hf:")):
            return get_task(name)
        return get_task(name, question_field=d.question_field, answer_field=d.answer_field,
                        choices_field=d.choices_field, answer_type=d.answer_type)

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
    def held_out(self):
        """The labeled eval examples ([] for a file task with no eval.task: nothing to score)."""
        e = self.cfg.eval
        if not self.cfg.eval.task and self.cfg.data.task.startswith("file:"):
            return []
        return self.eval_task.load(self.eval_task.resolve_split(e.split, "eval"), e.limit or None)

    @functools.cached_property
    def _guarded(self):
        """(unlabeled pool, eval examples) after the contamination guard (contamination.json)."""
        from .contamination import find_overlap

        d = self.cfg.data
        split = self.task.resolve_split(d.split, "unlabeled")
        pool = self.task.load(split, d.limit or None)
        if not pool:
            raise InputError(f"task {d.task!r} split {split!r} has no questions")
        evals = self.held_out
        eval_split = self.eval_task.resolve_split(self.cfg.eval.split, "eval") if evals else None
        same = bool(evals) and self.eval_task.name == self.task.name and eval_split == split
        if same:
            ids = {e.id for e in evals}
            found = [{"eval_id": q.id, "pool_id": q.id, "share": 1.0} for q in pool if q.id in ids]
        else:
            found = find_overlap(pool, evals)
        info = {"pool": len(pool), "eval": len(evals), "same_split": same, "policy": d.overlap,
                "overlapping": len(found), "pairs": found[:100]}
        if (found or same) and d.overlap == "refuse":
            why = (f"the unlabeled pool and the eval set are both split {split!r} of {d.task!r}" if same else
                   f"{len(found)} of {len(evals)} eval questions near-duplicate unlabeled questions "
                   f"(e.g. {found[0]['eval_id']} ~ {found[0]['pool_id']}: {100 * found[0]['share']:.0f}% shared 8-grams)")
            raise InputError(f"contamination guard: {why}. Pick disjoint splits, or set data.overlap=drop to remove them "
                             "from the unlabeled pool, or data.overlap=allow to keep them (the report lists them)")
        if d.overlap == "drop":
            drop = {f["pool_id"] for f in found}
            pool = [q for q in pool if q.id not in drop]
            info["dropped"] = len(drop)
            if not pool:
                raise InputError("contamination guard: every unlabeled question overlaps the eval set")
        write_json(self.run_dir / "contamination.json", info)
        if found:
            self.log(f"contamination guard: {len(found)} overlapping questions ({d.overlap})")
        return pool, evals

    @property
    def questions(self):
        return self._guarded[0]

    @property
    def eval_examples(self):
        return self._guarded[1]

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
        key = name if name in ("eval_base", "eval_only", "report") else f"{ROUND}/{name}"
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

    def _evaluate(self, which: str, out_dir: Path, examples=None):
        from .evaluate import run_eval

        s = self.cfg.sample
        examples = self.eval_examples if examples is None else examples
        summary = run_eval(self.eval_task, self.sampler(which), examples, out_dir, self.cfg.eval,
                           s.shots, s.max_new_tokens, self.cfg.seed, s.batch_rows)
        return {"accuracy": {k: v["accuracy"] for k, v in summary.items() if "accuracy" in v}}

    def evaluate_only(self) -> dict:
        """`lmsi eval --task X --model M`: score the model on the eval split, no training pool."""
        if not self.held_out:
            raise InputError(f"task {self.eval_task.name!r} has no labeled eval split; set eval.task")
        if any(e.answer is None for e in self.held_out):
            raise InputError(f"task {self.eval_task.name!r}: the eval split has unlabeled questions; pick a labeled split")
        self.stage("eval_only")
        import json

        return json.loads((self.run_dir / "eval" / "summary.json").read_text())

    def _eval_only(self):
        return self._evaluate("base", self.run_dir / "eval", self.held_out)

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

        rows = run_build(self.task, self.round_dir, self.cfg.build, self.cfg.build.shots, self.cfg.seed, self.cfg.train.method)
        return {"rows": len(rows)}

    def _train(self):
        from .train import run_train

        model, tok = self.model("base")
        self._models.clear()  # training mutates it
        run_train(model, tok, self.round_dir, self.cfg.train, self.cfg.seed, task=self.task)

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
