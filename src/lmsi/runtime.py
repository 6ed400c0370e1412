"""Which model each stage uses and what samples from it: model specs per round, the backend
choice, and one recipe from which every sampler is built (here, or on a Ray worker).

One model stays in memory at a time: loading another (or a llama.cpp/vLLM engine) drops the last.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .backends import from_recipe
from .backends.llama_probe import llama_cpp_import_error
from .backends.local_server import LocalServer
from .backends.lora_fleet import LoraFleet
from .config import ConfigError, RunConfig
from .fleet import RayFleet
from .gguf_export import export_gguf
from .models import gguf_file, load_model, pick_dtype, resolve_model
from .rundir import RunDir


class Runtime:
    def __init__(self, cfg: RunConfig, run_dir: Path, log=print):
        self.cfg, self.run_dir, self.log = cfg, Path(run_dir), log
        self._loaded: dict[str, object] = {}
        serve = cfg.openai.serve if cfg.backend == "openai" else ""
        self.server = LocalServer(serve, self.run_dir / "server.log", log) if serve else None
        o = cfg.openai
        lora = cfg.backend == "openai" and o.lora_adapters  # (never with openai.serve: config refuses both)
        self.lora = LoraFleet(o.base_urls, o.api_key_env, o.timeout, o.retries, log) if lora else None

    def spec(self, k: int, student: bool = False, draw: int = 0) -> str:
        """The model after round k, training draw `draw` (k=0: the base model, or the student before training)."""
        if k == 0:
            return self.cfg.student if student and self.cfg.student else self.cfg.model
        round_dir = self.run_dir / f"round_{k:02d}"
        return str((round_dir / f"draw_{draw}" if draw else round_dir) / "model")

    def _trained(self, spec: str) -> bool:
        return spec.startswith(str(self.run_dir))

    @property
    def dtype(self) -> str:
        """The config's dtype; `auto` is measured once per run and kept in resolved.json, so a
        resumed run computes in the same precision as the stages before it."""
        if self.cfg.dtype != "auto":
            return self.cfg.dtype
        return RunDir(self.run_dir).resolved("dtype", pick_dtype)

    def model(self, spec: str):
        """(model, tokenizer) for a spec."""
        if spec not in self._loaded:
            self._loaded.clear()
            self.log(f"loading model: {spec}")
            self._loaded[spec] = load_model(spec, self.dtype, self.cfg.trust_remote_code)
        return self._loaded[spec]

    def release(self) -> None:
        """Forget every loaded model (training mutates the one it was given) and stop a served one."""
        self._loaded.clear()
        if self.server:
            self.server.stop()

    # -- backends ---------------------------------------------------------
    def _base_gguf(self, spec: str) -> Path | None:
        """The GGUF a spec is, or for a round's model the GGUF of the model it was trained from."""
        return gguf_file((self.cfg.student or self.cfg.model) if self._trained(spec) else spec)

    def backend_for(self, spec: str) -> str:
        """`auto`: llama.cpp when it is installed and the model has a GGUF (the base, or a round
        model exported from it), else the pure-torch sampler. An openai server holds the base
        model only, so round models sample with hf, unless lmsi serves each model (openai.serve) or
        loads each round's adapter into the servers (openai.lora_adapters)."""
        backend = self.cfg.backend
        if backend == "auto":
            if not importlib.util.find_spec("llama_cpp") or not self._base_gguf(spec):
                return "hf"
            broken = llama_cpp_import_error()
            if broken:  # installed but unusable: say why, and sample with torch
                self.log(f"sampler: hf ({broken})")
            return "hf" if broken else "llamacpp"
        if backend == "openai" and self._trained(spec) and not (self.server or self.lora):
            self.log(f"sampler: hf for {spec} (the openai server serves the base model)")
            return "hf"
        return backend

    def gguf_for(self, spec: str) -> Path:
        """The GGUF llama.cpp samples from: the base model's, or a round's model exported once."""
        base = self._base_gguf(spec)
        if base is None:
            raise ConfigError("backend llamacpp needs a GGUF model (embedded:NAME or a .gguf path)")
        if not self._trained(spec):
            return base
        out = Path(spec) / "model.gguf"
        if not out.exists():
            self.log(f"exporting {spec} to GGUF for llama.cpp")
            export_gguf(Path(spec), base, out)
        return out

    def recipe(self, spec: str) -> dict:
        """Everything needed to build the sampler for a spec, in this process or on a remote worker."""
        c, backend = self.cfg, self.backend_for(spec)
        if backend == "llamacpp":
            return {"backend": backend, "spec": str(self.gguf_for(spec)), "batch_rows": c.sample.batch_rows}
        if backend == "openai":
            o = c.openai
            keys = ("base_urls", "served_model", "api_key_env", "concurrency", "timeout", "retries")
            r = {"backend": backend, "spec": None, **{k: getattr(o, k) for k in keys}}
            if self.server:
                fields = {"model": resolve_model(spec)} if "model" in self.server.fields else {}
                fields |= {"gguf": str(self.gguf_for(spec))} if "gguf" in self.server.fields else {}
                r["base_urls"] = [self.server.url_for(spec, **fields)]
                r["served_model"] = o.served_model or fields.get("model", "")  # vLLM names a model by its path
            elif self.lora:  # asked before the first request, so a fleet without LoRA fails before any stage
                self.lora.check()
                if self._trained(spec):
                    r["served_model"] = self.lora.serve(Path(spec), self.run_dir)
            return r
        if backend == "hf":
            return {"backend": backend, "spec": spec, "batch_rows": c.sample.batch_rows, "dtype": self.dtype}
        if backend == "vllm":
            return {
                "backend": backend,
                "spec": resolve_model(spec),
                "dtype": self.dtype,
                "seed": c.seed,
                "gpu_memory_utilization": c.sample.gpu_memory,
                "trust_remote_code": c.trust_remote_code,
            }
        return {"backend": backend, "spec": None}

    def sampler(self, spec: str):
        """The sampler for a spec in this process (engines that hold a model are kept loaded)."""
        r = self.recipe(spec)
        if r["backend"] == "hf":
            return from_recipe(r, loaded=self.model(spec))
        if r["backend"] in ("llamacpp", "vllm"):
            key = f"{r['backend']}:{spec}"
            if key not in self._loaded:
                self._loaded.clear()  # one model in memory: the torch copy is not needed here
                self.log(f"sampler: {'llama.cpp' if r['backend'] == 'llamacpp' else 'vLLM'} on {spec}")
                self._loaded[key] = from_recipe(r)
            return self._loaded[key]
        return from_recipe(r)

    def sample_engine(self, spec: str):
        """What the sample stage draws from: a Ray fleet (engine=ray) or this process's sampler."""
        if self.cfg.engine != "ray":
            return self.sampler(spec)
        r = self.cfg.ray
        self.log(f"sampling on Ray: {r.workers} workers ({self.backend_for(spec)})")
        return RayFleet(self.recipe(spec), r.workers, r.cpus_per_worker, r.address)
