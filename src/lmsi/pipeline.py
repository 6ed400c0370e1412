"""The self-improvement loop, stage by stage, over one run directory.

    from lmsi.config import load_config
    from lmsi.pipeline import Pipeline
    Pipeline(load_config(overrides=["sample.m=4", "loop.rounds=3"])).run()

Layout:  run_dir/config.yaml, manifest.json, contamination.json, [exemplars.json,
questions_self.jsonl], eval_base/, [eval_student/], round_NN/{samples,votes,train}.jsonl,
round_NN/{adapter,model,eval}/, loop.json, report.md, report.png. Finished stages are
recorded in manifest.json and skipped on rerun. Round k samples with round k-1's model.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import yaml

from .config import ConfigError, RunConfig, diff_configs
from .io import InputError, Manifest, atomic_write_text, read_jsonl, write_json, write_jsonl

ROUND_STAGES = ("sample", "vote", "build", "train", "eval")
RUN_STAGES = ("exemplars", "questions", "eval_base", "eval_student", "eval_only", "report")
NEEDS = {"vote": "sample", "build": "vote", "train": "build", "eval": "train"}


def make_task(cfg: RunConfig, name: str):
    """A registered task, or a file:/hf: task with the config's field mapping."""
    from .tasks import task_from_data

    return task_from_data(name, vars(cfg.data))


class Pipeline:
    def __init__(self, cfg: RunConfig, force: bool = False, log=print):
        self.cfg, self.log = cfg, log
        self.run_dir = Path(cfg.run_dir)
        self._check_config(force)
        self.manifest = Manifest(self.run_dir)
        self.task = self._make_task(cfg.data.task)
        self.eval_task = self._make_task(cfg.eval.task) if cfg.eval.task else self.task
        self._models: dict[str, object] = {}
        self._use_saved_exemplars()

    def round_dir(self, k: int) -> Path:
        return self.run_dir / f"round_{k:02d}"

    def _make_task(self, name: str):
        return make_task(self.cfg, name)

    def _use_saved_exemplars(self) -> None:
        path = self.run_dir / "exemplars.json"
        if self.cfg.selfgen.exemplars and path.exists():
            from .tasks import Exemplar

            exemplars = tuple(Exemplar(**e) for e in json.loads(path.read_text()))
            for t in {id(self.task): self.task, id(self.eval_task): self.eval_task}.values():
                t.exemplars = exemplars

    # -- config echo and resume guard -----------------------------------
    @staticmethod
    def saved_config(run_dir: Path) -> dict:
        """A run directory's config.yaml; keys added to lmsi after the run started read as their defaults."""
        from .config import with_defaults

        return with_defaults(yaml.safe_load((Path(run_dir) / "config.yaml").read_text()) or {})

    def _check_config(self, force: bool) -> None:
        path = self.run_dir / "config.yaml"
        new = self.cfg.to_dict()
        if path.exists():
            # the run directory itself may be named by another path: that does not block a resume
            old = self.saved_config(self.run_dir)
            diff = [d for d in diff_configs(old, new) if not d.startswith("run_dir:")]
            if diff and not force:
                raise ConfigError(
                    f"{self.run_dir} was started with a different config; differing keys:\n  "
                    + "\n  ".join(diff)
                    + "\nuse a new run_dir, or --force to continue anyway"
                )
        atomic_write_text(path, yaml.safe_dump(new, sort_keys=False))
        write_json(self.run_dir / "config.json", new)

    def discard_if_unstarted(self) -> None:
        """Remove what opening the run wrote (config, command log) when no stage has run yet."""
        if self.manifest.data["stages"]:
            return
        for name in ("config.yaml", "config.json", "commands.txt"):
            (self.run_dir / name).unlink(missing_ok=True)
        if self.run_dir.is_dir() and not any(self.run_dir.iterdir()):
            self.run_dir.rmdir()

    # keys a borrowed stage depends on: a run that differs in any of them must sample for itself
    SAMPLE_KEYS = (
        "model",
        "backend",
        "dtype",
        "seed",
        "student",
        "data",
        "sample",
        "eval",
        "selfgen",
        "loop.questions",
    )

    def reuse_samples(self, src: Path) -> list[str]:
        """Borrow another run's base eval and round-1 samples (same model, data, sampling and eval
        config), so methods that differ only after sampling are compared on one sample budget.
        Borrowed stages keep the source's wall time in the manifest; returns their names."""
        src = Path(src)
        if not (src / "config.yaml").exists():
            raise InputError(f"{src}: no config.yaml; is this an lmsi run directory?")
        if (src / "signal.json").exists():
            return self.reuse_signal_paths(src)
        theirs = self.saved_config(src)
        diff = [
            d
            for d in diff_configs(theirs, self.cfg.to_dict())
            if d.split(":")[0].startswith(self.SAMPLE_KEYS) and not self._eval_subset(d, theirs["eval"])
        ]
        if diff:
            raise ConfigError(f"cannot reuse the samples of {src}: its config differs in\n  " + "\n  ".join(diff))
        stages = Manifest(src).data["stages"]
        moved = {
            "exemplars": ["exemplars.json"],
            "questions": ["questions_self.jsonl"],
            "eval_base": ["eval_base", "contamination.json"],
            "eval_student": ["eval_student"],
            "round_01/sample": ["round_01/samples.jsonl", "round_01/path_logprobs.jsonl"],
        }
        taken = []
        for stage, paths in moved.items():
            if stage not in stages or self.manifest.done(stage):
                continue
            # a stage the source itself borrowed names this source, the one the user can check
            info = {k: v for k, v in stages[stage].items() if k not in ("seconds", "finished")}
            self.copy_stage(src, stage, paths, stages[stage]["seconds"], **{**info, "reused_from": str(src)})
            taken.append(stage)
        if "round_01/sample" not in taken and not self.manifest.done("round_01/sample"):
            raise InputError(f"{src} has not finished sampling round 1; nothing to reuse")
        self.log(f"reused from {src}: {', '.join(taken) or 'nothing (already done here)'}")
        return taken

    def _eval_subset(self, diff: str, theirs: dict) -> bool:
        """A borrowed base eval serves a run that evaluates fewer of its modes on the same items
        (say greedy CoT only, to compare many variants cheaply); the sc path count matters only
        when sc is still evaluated."""
        key, e = diff.split(":")[0], self.cfg.eval
        return (key == "eval.modes" and set(e.modes) <= set(theirs["modes"])) or (
            key == "eval.sc_m" and "sc" not in e.modes
        )

    def reuse_signal_paths(self, src: Path) -> list[str]:
        """Round-1 samples from an `lmsi signal` directory: its sampled paths on the same questions,
        model and sampling settings (measure the signal, then train on those very paths). The gold
        answers it scored against stay in the rows only as `gold`, like every round's samples."""
        if self.manifest.done("round_01/sample"):
            return []
        if self.cfg.selfgen.questions or self.cfg.selfgen.exemplars:
            raise ConfigError(
                "--samples-from a signal directory needs the task's own questions and exemplars (selfgen off)"
            )
        from .backends import SamplingParams
        from .evaluate import SC_TEMPERATURE
        from .sample import sample_row

        t, c, s = self.saved_config(src), self.cfg, self.cfg.sample
        theirs = {
            "model": t["model"],
            "backend": t["backend"],
            "dtype": t["dtype"],
            "task": t["eval"]["task"] or t["data"]["task"],
            "split": t["eval"]["split"],
            "m": t["eval"]["sc_m"],
            "temperature": SC_TEMPERATURE,
            "top_p": SamplingParams.top_p,
            "max_new_tokens": t["sample"]["max_new_tokens"],
            "shots": t["sample"]["shots"],
        }
        ours = {
            "model": c.model,
            "backend": c.backend,
            "dtype": c.dtype,
            "task": c.data.task,
            "split": self.task.resolve_split(c.data.split, "unlabeled"),
            "m": s.m,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_new_tokens": s.max_new_tokens,
            "shots": s.shots,
        }
        diff = [f"{k}: {theirs[k]!r} there, {ours[k]!r} here" for k in ours if theirs[k] != ours[k]]
        if diff:
            raise ConfigError(f"cannot reuse the paths of {src}: it differs in\n  " + "\n  ".join(diff))
        rows = {r["id"]: r for r in read_jsonl(src / "eval" / "sc.jsonl")}
        out = []
        for q in self.questions(1):
            r = rows.get(q.id)
            prompt = self.task.prompt(q.question, "fewshot_cot", s.shots)
            if r is None or r["prompt"] != prompt:
                why = "was not measured there" if r is None else "was sampled there with another prompt"
                raise InputError(f"cannot reuse the paths of {src}: question {q.id} {why}")
            out.append(sample_row(self.task, q, prompt, r["paths"]))
        write_jsonl(self.round_dir(1) / "samples.jsonl", out)
        if (src / "eval" / "path_logprobs.jsonl").exists():  # `lmsi signal --weighted` scored these very paths
            import shutil

            shutil.copy2(src / "eval" / "path_logprobs.jsonl", self.round_dir(1) / "path_logprobs.jsonl")
        seconds = Manifest(src).data["stages"].get("eval_only", {}).get("seconds", 0.0)
        self.manifest.mark(
            "round_01/sample",
            seconds,
            questions=len(out),
            reused_from=str(src),
            note="paths sampled by lmsi signal; seconds include its greedy pass",
        )
        self.log(f"reused from {src}: round_01/sample ({len(out)} questions)")
        return ["round_01/sample"]

    def copy_stage(self, src: Path, stage: str, files: list[str], seconds: float = 0.0, **info) -> None:
        """Copy another run's outputs of a finished stage (files or folders, relative to the run
        directory) into this one and mark the stage done here."""
        import shutil

        for rel in files:
            a, b = Path(src) / rel, self.run_dir / rel
            if a.is_dir():
                shutil.copytree(a, b, dirs_exist_ok=True)
            elif a.exists():
                b.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(a, b)
        self.manifest.mark(stage, seconds, **info)

    # -- data -----------------------------------------------------------
    @functools.cached_property
    def held_out(self):
        """The labeled eval examples ([] for a file task with no eval.task: nothing to score)."""
        e = self.cfg.eval
        if not self.cfg.eval.task and self.cfg.data.task.startswith("file:"):
            return []
        return self.eval_task.load(self.eval_task.resolve_split(e.split, "eval"), e.limit or None)

    def _pool_size(self) -> int | None:
        """Unlabeled questions to load: every round's share, plus exemplar candidates."""
        c = self.cfg
        if c.selfgen.questions:
            need = c.selfgen.seed_questions
        elif not c.data.limit:
            return None
        else:
            need = c.data.limit * (c.loop.rounds if c.loop.questions == "fresh" else 1)
        return need + (c.selfgen.exemplar_pool if c.selfgen.exemplars else 0)

    @functools.cached_property
    def _guarded(self):
        """(unlabeled pool, eval examples) after the contamination guard (contamination.json)."""
        from .contamination import find_overlap

        d = self.cfg.data
        split = self.task.resolve_split(d.split, "unlabeled")
        pool = self.task.load(split, self._pool_size())
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
        info = {
            "pool": len(pool),
            "eval": len(evals),
            "same_split": same,
            "policy": d.overlap,
            "overlapping": len(found),
            "pairs": found[:100],
        }
        if (found or same) and d.overlap == "refuse":
            why = (
                f"the unlabeled pool and the eval set are both split {split!r} of {d.task!r}"
                if same
                else f"{len(found)} of {len(evals)} eval questions near-duplicate unlabeled questions "
                f"(e.g. {found[0]['eval_id']} ~ {found[0]['pool_id']}: {100 * found[0]['share']:.0f}% shared 8-grams)"
            )
            raise InputError(
                f"contamination guard: {why}. Pick disjoint splits, or set data.overlap=drop to remove them "
                "from the unlabeled pool, or data.overlap=allow to keep them (the report lists them)"
            )
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
    def pool(self):
        """Unlabeled questions for the rounds (or the seeds, for self-generated questions)."""
        pool = self._guarded[0]
        return pool[: -self.cfg.selfgen.exemplar_pool] if self.cfg.selfgen.exemplars and len(pool) > 1 else pool

    @property
    def exemplar_candidates(self):
        return self._guarded[0][len(self.pool) :] or self._guarded[0]

    @property
    def eval_examples(self):
        return self._guarded[1]

    @functools.cached_property
    def _self_questions(self):
        from .tasks import Example

        return [Example(**r) for r in read_jsonl(self.run_dir / "questions_self.jsonl")]

    def questions(self, k: int = 1):
        """Round k's unlabeled questions: its own slice of the pool when loop.questions is fresh."""
        pool = self._self_questions if self.cfg.selfgen.questions else self.pool
        if self.cfg.loop.questions == "same" or self.cfg.loop.rounds == 1:
            part = pool[: self.cfg.data.limit or None]
        else:
            size = self.cfg.data.limit or len(pool) // self.cfg.loop.rounds
            part = pool[(k - 1) * size : k * size]
        if not part:
            raise InputError(
                f"round {k} has no unlabeled questions left (pool of {len(pool)}); "
                "lower data.limit or loop.rounds, or set loop.questions=same"
            )
        return part

    # -- models ---------------------------------------------------------
    def model_spec(self, k: int, student: bool = False) -> str:
        """The model after round k (k=0: the base model, or the student before training)."""
        if k == 0:
            return self.cfg.student if student and self.cfg.student else self.cfg.model
        return str(self.round_dir(k) / "model")

    def model(self, spec: str):
        """(model, tokenizer) for a spec; one model in memory at a time."""
        if spec not in self._models:
            from .models import load_model

            self._models.clear()
            self.log(f"loading model: {spec}")
            self._models[spec] = load_model(spec, self.cfg.dtype, self.cfg.trust_remote_code)
        return self._models[spec]

    def _base_gguf(self, spec: str):
        """The GGUF a spec is, or for a round's model the GGUF of the model it was trained from."""
        from .models import gguf_file

        trained = spec.startswith(str(self.run_dir))
        return gguf_file((self.cfg.student or self.cfg.model) if trained else spec)

    def backend_for(self, spec: str) -> str:
        """`auto`: llama.cpp when it is installed and the model has a GGUF (the base, or a round
        model exported from it), else the pure-torch sampler."""
        if self.cfg.backend != "auto":
            return self.cfg.backend
        import importlib.util

        return "llamacpp" if importlib.util.find_spec("llama_cpp") and self._base_gguf(spec) else "hf"

    def gguf_for(self, spec: str) -> Path:
        """The GGUF llama.cpp samples from: the base model's, or a round's model exported once."""
        base = self._base_gguf(spec)
        if base is None:
            raise ConfigError("backend llamacpp needs a GGUF model (embedded:NAME or a .gguf path)")
        if not spec.startswith(str(self.run_dir)):
            return base
        out = Path(spec) / "model.gguf"
        if not out.exists():
            from .gguf_export import export_gguf

            self.log(f"exporting {spec} to GGUF for llama.cpp")
            export_gguf(Path(spec), base, out)
        return out

    def sampler(self, spec: str):
        from .backends import get_sampler

        backend = self.backend_for(spec)
        if backend == "fake":
            return get_sampler("fake", None)
        if backend == "openai":
            if spec.startswith(str(self.run_dir)):  # the server holds the base model, not this round's
                self.log(f"sampler: hf for {spec} (the openai server serves the base model)")
                backend = "hf"
            else:
                o = self.cfg.openai
                return get_sampler(
                    "openai",
                    None,
                    base_urls=o.base_urls,
                    served_model=o.served_model,
                    api_key_env=o.api_key_env,
                    concurrency=o.concurrency,
                    timeout=o.timeout,
                    retries=o.retries,
                )
        if backend in ("llamacpp", "vllm"):
            key = f"{backend}:{spec}"
            if key not in self._models:
                self._models.clear()  # one model in memory: the torch copy is not needed here
                self.log(f"sampler: {'llama.cpp' if backend == 'llamacpp' else 'vLLM'} on {spec}")
                r = self.recipe(spec)
                self._models[key] = get_sampler(r.pop("backend"), r.pop("spec"), **r)
            return self._models[key]
        model, tok = self.model(spec)
        return get_sampler(backend, model, tokenizer=tok, batch_rows=self.cfg.sample.batch_rows)

    # -- stages ---------------------------------------------------------
    def stage(self, name: str, k: int = 1, force: bool = False) -> None:
        key = name if name in RUN_STAGES else f"{self.round_dir(k).name}/{name}"
        if self.manifest.done(key) and not force and name != "report":
            self.log(f"[skip] {key} (done)")
            return
        need = NEEDS.get(name)
        if need and not self.manifest.done(f"{self.round_dir(k).name}/{need}"):
            raise RuntimeError(f"stage {name!r} of round {k} needs stage {need!r} first (lmsi {need} or lmsi run)")
        if name == "sample" and k > 1 and not self.manifest.done(f"{self.round_dir(k - 1).name}/train"):
            raise RuntimeError(f"round {k} samples with round {k - 1}'s model: finish round {k - 1} first")
        t = time.time()
        fn = getattr(self, f"_{name}")
        info = (fn(k) if name in ROUND_STAGES else fn()) or {}
        if name != "report":
            self.manifest.mark(key, time.time() - t, **info)
            self.log(f"[done] {key} in {time.time() - t:.0f}s")

    def _evaluate(self, spec: str, out_dir: Path, examples=None):
        from .evaluate import run_eval

        s = self.cfg.sample
        examples = self.eval_examples if examples is None else examples
        summary = run_eval(
            self.eval_task,
            self.sampler(spec),
            examples,
            out_dir,
            self.cfg.eval,
            s.shots,
            s.max_new_tokens,
            self.cfg.seed,
            s.batch_rows,
        )
        return {"accuracy": {k: v["accuracy"] for k, v in summary.items() if "accuracy" in v}}

    def evaluate_only(self) -> dict:
        """`lmsi eval --task X --model M`: score the model on the eval split, no training pool."""
        if not self.held_out:
            raise InputError(f"task {self.eval_task.name!r} has no labeled eval split; set eval.task")
        if any(e.answer is None for e in self.held_out):
            raise InputError(
                f"task {self.eval_task.name!r}: the eval split has unlabeled questions; pick a labeled split"
            )
        self.stage("eval_only")
        return json.loads((self.run_dir / "eval" / "summary.json").read_text())

    def _eval_only(self):
        return self._evaluate(self.model_spec(0), self.run_dir / "eval", self.held_out)

    def _eval_base(self):
        return self._evaluate(self.model_spec(0), self.run_dir / "eval_base")

    def _eval_student(self):
        return self._evaluate(self.model_spec(0, student=True), self.run_dir / "eval_student")

    def _exemplars(self):
        from .selfgen import make_exemplars

        s = self.cfg.sample
        shots = max(s.shots, self.cfg.build.shots)
        exemplars, rows = make_exemplars(
            self.task,
            self.sampler(self.model_spec(0)),
            self.exemplar_candidates,
            self.cfg.selfgen.exemplar_m,
            shots,
            s.max_new_tokens,
            self.cfg.seed,
        )
        if len(exemplars) < shots:
            raise InputError(
                f"self-generated exemplars: {len(exemplars)} usable of the {shots} shots needed, from "
                f"{len(self.exemplar_candidates)} candidate questions; give more unlabeled questions "
                "or raise selfgen.exemplar_pool / sample.max_new_tokens"
            )
        write_jsonl(self.run_dir / "exemplar_votes.jsonl", rows)
        write_json(self.run_dir / "exemplars.json", [e.__dict__ for e in exemplars])
        self._use_saved_exemplars()
        return {"exemplars": len(exemplars), "mean_confidence": sum(r["confidence"] for r in rows) / len(rows)}

    def _questions(self):
        from .selfgen import generate_questions

        g = self.cfg.selfgen
        avoid = list(self.eval_examples)
        for split in self.task.split_names:  # every other split of the task may be evaluated on some day
            if split != self.task.resolve_split(self.cfg.data.split, "unlabeled"):
                avoid += self.task.load(split)
        kept, stats = generate_questions(
            self.task,
            self.sampler(self.model_spec(0)),
            self.pool,
            avoid,
            g.generate,
            g.per_prompt,
            g.temperature,
            self.cfg.seed,
        )
        if not kept:
            raise RuntimeError(f"self-generated questions: none passed the filters ({stats['rejected']})")
        write_jsonl(self.run_dir / "questions_self.jsonl", [q.__dict__ for q in kept])
        self.__dict__.pop("_self_questions", None)
        return stats

    def recipe(self, spec: str) -> dict:
        """What a remote worker needs to build the same sampler this process would."""
        backend, rows = self.backend_for(spec), self.cfg.sample.batch_rows
        if backend == "llamacpp":
            return {"backend": backend, "spec": str(self.gguf_for(spec)), "batch_rows": rows}
        if backend == "openai":
            o = self.cfg.openai
            return {
                "backend": backend,
                "spec": None,
                "base_urls": o.base_urls,
                "served_model": o.served_model,
                "api_key_env": o.api_key_env,
                "concurrency": o.concurrency,
                "timeout": o.timeout,
                "retries": o.retries,
            }
        if backend == "hf":
            return {"backend": backend, "spec": spec, "batch_rows": rows, "dtype": self.cfg.dtype}
        if backend == "vllm":
            from .models import resolve_model

            return {
                "backend": backend,
                "spec": resolve_model(spec),
                "dtype": self.cfg.dtype,
                "seed": self.cfg.seed,
                "gpu_memory_utilization": self.cfg.sample.gpu_memory,
                "trust_remote_code": self.cfg.trust_remote_code,
            }
        return {"backend": backend, "spec": None}

    def _sample(self, k):
        from .sample import run_sample

        spec = self.model_spec(k - 1)
        if self.cfg.engine == "ray":
            from .fleet import RayFleet

            r = self.cfg.ray
            self.log(f"sampling on Ray: {r.workers} workers ({self.backend_for(spec)})")
            sampler = RayFleet(self.recipe(spec), r.workers, r.cpus_per_worker, r.address)
        else:
            sampler = self.sampler(spec)
        rows = run_sample(
            self.task, sampler, self.questions(k), self.round_dir(k), self.cfg.sample, self.cfg.seed + 1000 * (k - 1)
        )
        return {"questions": len(rows)}

    def _vote(self, k):
        from .vote import run_vote

        rows = run_vote(self.round_dir(k), self._path_logprobs(k) if self.cfg.build.vote == "weighted" else None)
        return {
            "confident": sum(r["confidence"] >= self.cfg.build.threshold for r in rows),
            "agreement": sum(r["confidence"] for r in rows) / max(1, len(rows)),
        }

    def _path_logprobs(self, k) -> dict:
        from .signal import path_logprobs

        rd = self.round_dir(k)
        rows = [
            {"id": s["id"], "prompt": s["prompt"], "paths": s["completions"]} for s in read_jsonl(rd / "samples.jsonl")
        ]
        return path_logprobs(lambda: self.sampler(self.model_spec(k - 1)), rows, rd / "path_logprobs.jsonl")

    def _train_seed(self, k):
        t = self.cfg.train.seed
        return (self.cfg.seed if t < 0 else t) + k - 1

    def _build(self, k):
        from .build import run_build

        rows = run_build(
            self.task,
            self.round_dir(k),
            self.cfg.build,
            self.cfg.build.shots,
            self._train_seed(k),
            self.cfg.train.method,
        )
        return {"rows": len(rows)}

    def _train(self, k):
        from .train import run_train

        start = self.model_spec(k - 1 if self.cfg.loop.init == "previous" else 0, student=True)
        model, tok = self.model(start)
        self._models.clear()  # training mutates it
        run_train(model, tok, self.round_dir(k), self.cfg.train, self._train_seed(k), task=self.task)

    def _eval(self, k):
        return self._evaluate(self.model_spec(k), self.round_dir(k) / "eval")

    def _report(self):
        from .report import build_report

        self.table = build_report(self.run_dir)

    # -- the loop -------------------------------------------------------
    def _eval_dir(self, k: int) -> Path:
        return self.run_dir / "eval_base" if k == 0 else self.round_dir(k) / "eval"

    def stop_reason(self, k: int) -> str | None:
        """Label-free stop rule, checked after round k: did the new model's agreement (mean vote
        share of its self-consistency paths on the fixed eval questions; no label read) rise by
        loop.min_gain over the previous model's? Without sc evaluation, the agreement of the
        round's own vote on its fresh questions stands in (noisier: the questions change)."""
        from .evaluate import probe_agreement
        from .vote import agreement_stalled

        if not self.cfg.loop.stop or k < 1:
            return None
        now, before = probe_agreement(self._eval_dir(k)), probe_agreement(self._eval_dir(k - 1))
        where = "the eval questions"
        if now is None or before is None:
            if k < 2:
                return None
            stages = self.manifest.data["stages"]
            now, before = (
                stages[f"{self.round_dir(k).name}/vote"]["agreement"],
                stages[f"{self.round_dir(k - 1).name}/vote"]["agreement"],
            )
            k, where = k - 1, "fresh questions"  # round k's vote measures round k-1's model
        if agreement_stalled(before, now, self.cfg.loop.min_gain):
            return (
                f"round {k}'s model did not raise agreement on {where} ({now:.3f} vs {before:.3f}, needed "
                f"+{self.cfg.loop.min_gain}): keep round {k - 1}'s model"
            )
        return None

    def run(self) -> str:
        c = self.cfg
        has_eval = bool(self.eval_examples)
        pre = ["exemplars"] * c.selfgen.exemplars + ["questions"] * c.selfgen.questions
        pre += ["eval_base"] * has_eval + ["eval_student"] * bool(c.student and has_eval)
        for name in pre:
            self.stage(name)
        loop = {"rounds_planned": c.loop.rounds, "rounds_done": 0, "stopped": None}
        for k in range(1, c.loop.rounds + 1):
            for name in ("sample", "vote", "build", "train") + ("eval",) * has_eval:
                self.stage(name, k)
            loop["rounds_done"] = k
            loop["stopped"] = self.stop_reason(k)
            if loop["stopped"]:
                self.log(f"[stop] {loop['stopped']}")
                break
        write_json(self.run_dir / "loop.json", loop)
        self.stage("report")
        return self.table
