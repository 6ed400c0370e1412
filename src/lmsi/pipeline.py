"""The self-improvement loop: stages in order over one run directory, round after round.

    from lmsi.config import load_config
    from lmsi.pipeline import Pipeline
    Pipeline(load_config(overrides=["sample.m=4", "loop.rounds=3"])).run()

Before the rounds: [self-written exemplars], [self-written questions], the base model's eval
[and the student's]. Each round k: sample with round k-1's model -> vote -> build -> train -> eval,
then the label-free stop rule. Finished stages are recorded in manifest.json and skipped on rerun
(the layout is in rundir.py). Where the questions come from is pool.py; which model and sampler
serve a stage is runtime.py; borrowing another run's stages is borrow.py.
"""

from __future__ import annotations

import time

from .build import run_build
from .config import ConfigError, RunConfig, diff_configs, load_config
from .earlystop import Waves, full_vote_users
from .evaluate import run_eval
from .io import InputError, Manifest, write_json
from .pool import DataPool
from .rundir import CONFIG, RunDir
from .runtime import Runtime
from .sample import path_logprobs, run_sample
from .selfgen import run_exemplars, run_questions
from .stats import describe_signs, probe_agreement, weak_vote
from .stoprule import agreement_stop, round_vote_signs, weak_vote_stop
from .tasks import Exemplar, task_from_data
from .trackers import Tracker
from .train import grpo_probe, run_train
from .vote import run_vote

ROUND_STAGES = ("sample", "vote", "select")
DRAW_STAGES = ("build", "train", "eval")  # once per training draw (train.draws)
RUN_STAGES = ("exemplars", "questions", "eval_base", "eval_student", "eval_only")
NEEDS = {"vote": "sample", "build": "vote", "train": "build", "eval": "train"}


class Pipeline:
    after_stage = None  # called with each finished stage's manifest key (lmsi run --archive)

    def __init__(self, cfg: RunConfig, force: bool = False, log=print):
        self.cfg, self.log = cfg, log
        self.rundir = RunDir(cfg.run_dir)
        self.run_dir = self.rundir.path
        self.tracker = Tracker(cfg.train.report_to, self.rundir)  # a missing tracker library fails here
        self._check_config(force)
        self.rundir.clear_torn_writes()
        self.manifest = Manifest(self.run_dir)
        self.task = task_from_data(cfg.data.task, vars(cfg.data))
        self.eval_task = task_from_data(cfg.eval.task, vars(cfg.data)) if cfg.eval.task else self.task
        self.data = DataPool(cfg, self.task, self.eval_task, self.run_dir, log)
        self.runtime = Runtime(cfg, self.run_dir, log)
        self._use_saved_exemplars()

    @classmethod
    def open(cls, config, run_dir, overrides: list[str], force: bool = False, log=print, argv=None) -> Pipeline:
        """A pipeline from command-line arguments. Naming only an existing run dir resumes it with
        its saved config; `argv` is recorded in its commands.txt."""
        base = RunDir(run_dir).raw_config() if run_dir and config is None and not overrides else None
        cfg = load_config(config, overrides or [], base=base)
        if run_dir:
            cfg.run_dir = str(run_dir)
        p = cls(cfg, force=force, log=log)
        if argv is not None:
            p.rundir.record_command(argv)
        return p

    def round_dir(self, k: int):
        return self.rundir.round_dir(k)

    def questions(self, k: int = 1):
        return self.data.questions(k)

    def sampler(self, spec: str):
        return self.runtime.sampler(spec)

    def _use_saved_exemplars(self) -> None:
        saved = self.rundir.json("exemplars.json")
        if self.cfg.selfgen.exemplars and saved:
            exemplars = tuple(Exemplar(**e) for e in saved)
            for t in {id(self.task): self.task, id(self.eval_task): self.eval_task}.values():
                t.exemplars = exemplars

    def _check_config(self, force: bool) -> None:
        """A run's config is locked once a stage has written output; before that (a start that
        failed on a typo, say) the run takes the new config."""
        if self.rundir.has_config():
            # the run directory itself may be named by another path: that does not block a resume
            diff = [d for d in diff_configs(self.rundir.config, self.cfg.to_dict()) if not d.startswith("run_dir:")]
            if diff and not force and self.rundir.has_stage_output():
                raise ConfigError(
                    f"{self.run_dir} was started with a different config; differing keys:\n  "
                    + "\n  ".join(diff)
                    + "\nuse a new run_dir, or --force to continue anyway"
                )
            if diff and not force:
                self.log(f"{self.run_dir} has no stage output yet: it takes the new config ({len(diff)} keys differ)")
        self.rundir.save_config(self.cfg)

    def discard_if_unstarted(self) -> None:
        """Remove what opening the run wrote (config, command log) when no stage has run yet."""
        if self.manifest.data["stages"]:
            return
        for name in (CONFIG, "commands.txt"):
            (self.run_dir / name).unlink(missing_ok=True)
        if self.run_dir.is_dir() and not any(self.run_dir.iterdir()):
            self.run_dir.rmdir()

    # -- stages ---------------------------------------------------------
    def _key(self, name: str, k: int, d: int = 0) -> str:
        """The manifest key of a stage: eval_base, round_01/vote, round_01/build, round_01/draw_2/train."""
        if name in RUN_STAGES:
            return name
        folder = self.rundir.draw_dir(k, d) if name in DRAW_STAGES else self.round_dir(k)
        return f"{folder.relative_to(self.run_dir).as_posix()}/{name}"

    def chosen(self, k: int) -> int:
        """The training draw of round k that the loop continues with (see _select)."""
        return self.rundir.chosen_draw(k)

    def stage(self, name: str, k: int = 1, force: bool = False, d: int = 0) -> None:
        key = self._key(name, k, d)
        if self.manifest.done(key) and not force:
            self.log(f"[skip] {key} (done)")
            return
        need = NEEDS.get(name)
        if need and not self.manifest.done(self._key(need, k, d)):
            raise InputError(f"stage {name!r} of round {k} needs stage {need!r} first (lmsi {need} or lmsi run)")
        if name == "sample" and k > 1 and not self.manifest.done(self._key("train", k - 1, self.chosen(k - 1))):
            raise InputError(f"round {k} samples with round {k - 1}'s model: finish round {k - 1} first")
        t = time.time()
        fn = getattr(self, f"_{name}")
        info = (fn(k, d) if name in DRAW_STAGES else fn(k) if name in ROUND_STAGES else fn()) or {}
        self.manifest.mark(key, time.time() - t, **info)
        self.log(f"[done] {key} in {time.time() - t:.0f}s")
        if self.after_stage:
            self.after_stage(key)

    def _evaluate(self, spec: str, out_dir, examples=None):
        s = self.cfg.sample
        examples = self.data.eval_examples if examples is None else examples
        sampler = self.sampler(spec)
        summary = run_eval(
            self.eval_task,
            sampler,
            examples,
            out_dir,
            self.cfg.eval,
            s.shots,
            s.max_new_tokens,
            self.cfg.seed,
            s.batch_rows,
            waves=self._waves("sc", self.cfg.eval.sc_m),
        )
        return {"accuracy": {k: v["accuracy"] for k, v in summary.items() if "accuracy" in v}}

    def evaluate_only(self) -> dict:
        """`lmsi eval --task X --model M`: score the model on the eval split, no training pool."""
        held_out = self.data.held_out
        if not held_out:
            raise InputError(f"task {self.eval_task.name!r} has no labeled eval split; set eval.task")
        if any(e.answer is None for e in held_out):
            raise InputError(
                f"task {self.eval_task.name!r}: the eval split has unlabeled questions; pick a labeled split"
            )
        self.stage("eval_only")
        return self.rundir.summary(self.run_dir / "eval")

    def _eval_only(self):
        return self._evaluate(self.runtime.spec(0), self.run_dir / "eval", self.data.held_out)

    def _eval_base(self):
        return self._evaluate(self.runtime.spec(0), self.run_dir / "eval_base")

    def _eval_student(self):
        return self._evaluate(self.runtime.spec(0, student=True), self.run_dir / "eval_student")

    def _exemplars(self):
        sampler = self.sampler(self.runtime.spec(0))
        info = run_exemplars(self.task, sampler, self.data.exemplar_candidates, self.cfg, self.run_dir)
        self._use_saved_exemplars()
        return info

    def _questions(self):
        avoid = list(self.data.eval_examples)
        for split in self.task.split_names:  # every other split of the task may be evaluated on some day
            if split != self.task.resolve_split(self.cfg.data.split, "unlabeled"):
                avoid += self.task.load(split)
        sampler, g = self.sampler(self.runtime.spec(0)), self.cfg.selfgen
        return run_questions(self.task, sampler, self.data.pool, avoid, g, self.cfg.seed, self.run_dir)

    def _sample(self, k):
        engine = self.runtime.sample_engine(self.runtime.spec(k - 1, draw=self.chosen(k - 1)))
        seed = self.cfg.seed + 1000 * (k - 1)
        waves = self._waves("sample", self.cfg.sample.m)
        rows = run_sample(self.task, engine, self.questions(k), self.round_dir(k), self.cfg.sample, seed, waves)
        drawn, full = sum(len(r["answers"]) for r in rows), sum(r.get("m", len(r["answers"])) for r in rows)
        return {"questions": len(rows), "paths_drawn": drawn, "paths_full": full}

    def _waves(self, stage: str, m: int) -> Waves | None:
        """Early stopping for stage "sample" or "sc", unless something reads every path there."""
        s, b = self.cfg.sample, self.cfg.build
        if not s.early_stop or full_vote_users(self.cfg, bool(self.data.eval_examples))[stage]:
            return None
        return Waves(m, s.wave, threshold=b.threshold, distinct=b.max_paths) if stage == "sample" else Waves(m, s.wave)

    def vote_signs(self, k: int) -> dict:
        """Round k's label-free vote signs, read from its files (so a resumed run needs nothing
        the manifest of an older version lacks)."""
        spaces = {e.id: self.task.answer_space(e) for e in self.questions(k)}
        return round_vote_signs(self.rundir, k, self.cfg.build.threshold, spaces)

    def _vote(self, k):
        weights = self._path_logprobs(k) if self.cfg.build.vote == "weighted" else None
        rows = run_vote(self.round_dir(k), weights)
        signs = self.vote_signs(k)
        self.log(f"round {k} vote: {describe_signs(signs)}")
        weak = weak_vote(signs, self.cfg.loop.min_agreement) is not None
        return {"confident": sum(r["confidence"] >= self.cfg.build.threshold for r in rows), **signs, "weak": weak}

    def _path_logprobs(self, k) -> dict:
        rd = self.round_dir(k)
        rows = [
            {"id": s["id"], "prompt": s["prompt"], "paths": s["completions"]} for s in self.rundir.rows(rd, "samples")
        ]
        sampler = lambda: self.sampler(self.runtime.spec(k - 1, draw=self.chosen(k - 1)))  # noqa: E731
        return path_logprobs(sampler, rows, rd / "path_logprobs.jsonl")

    def _train_seed(self, k, d=0):
        t = self.cfg.train.seed
        return (self.cfg.seed if t < 0 else t) + k - 1 + d

    def _build(self, k, d):
        b, out = self.cfg.build, self.rundir.draw_dir(k, d)
        rows = run_build(self.task, self.round_dir(k), b, b.shots, self._train_seed(k, d), self.cfg.train.method, out)
        return {"rows": len(rows)}

    def _train(self, k, d):
        prev = k - 1 if self.cfg.loop.init == "previous" else 0
        model, tok = self.runtime.model(self.runtime.spec(prev, student=True, draw=self.chosen(prev)))
        self.runtime.release()  # training mutates it
        out, c = self.rundir.draw_dir(k, d), self.cfg
        self.tracker.before_train(out.relative_to(self.run_dir).as_posix())
        extra = grpo_probe(self.eval_task, self.data.eval_examples, c) if c.train.method == "grpo" else {}
        run_train(model, tok, out, c.train, self._train_seed(k, d), task=self.task, **extra)

    def _eval(self, k, d):
        return self._evaluate(self.runtime.spec(k, draw=d), self.rundir.draw_dir(k, d) / "eval")

    def _select(self, k):
        """Which draw round k+1 samples with, chosen without labels: the highest agreement (mean
        vote share of its self-consistency paths) on the eval questions; draw 0 without sc."""
        agree = [probe_agreement(self.rundir.draw_dir(k, d) / "eval") for d in range(self.cfg.train.draws)]
        best = 0 if None in agree else max(range(len(agree)), key=lambda d: (agree[d], -d))
        self.log(f"round {k}: draw {best} goes on (agreement on the eval questions: {agree})")
        return {"draw": best, "agreement": agree, "rule": "highest agreement on the eval questions"}

    # -- the loop -------------------------------------------------------
    def stop_reason(self, k: int) -> str | None:
        return agreement_stop(self.cfg, self.rundir, self.manifest.data["stages"], k)

    def run(self) -> dict:
        """Every stage in order (finished ones skipped); returns loop.json's content."""
        c = self.cfg
        has_eval = bool(self.data.eval_examples)
        pre = ["exemplars"] * c.selfgen.exemplars + ["questions"] * c.selfgen.questions
        pre += ["eval_base"] * has_eval + ["eval_student"] * bool(c.student and has_eval)
        for name in pre:
            self.stage(name)
        self.tracker.send(0)
        loop = {"rounds_planned": c.loop.rounds, "rounds_done": 0, "stopped": None}
        for k in range(1, c.loop.rounds + 1):
            self.stage("sample", k)
            self.stage("vote", k)
            loop["stopped"] = weak_vote_stop(self.cfg, self.vote_signs(k), k, self.log)
            if loop["stopped"]:
                break
            for d in range(c.train.draws):
                for name in ("build", "train") + ("eval",) * has_eval:
                    self.stage(name, k, d=d)
            if c.train.draws > 1:
                self.stage("select", k)
            loop["rounds_done"] = k
            self.tracker.send(k)
            loop["stopped"] = self.stop_reason(k)
            if loop["stopped"]:
                self.log(f"[stop] {loop['stopped']}")
                break
        write_json(self.run_dir / "loop.json", loop)
        self.tracker.close()
        self.runtime.release()  # and a server it started (openai.serve)
        return loop
