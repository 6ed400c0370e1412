"""openai.lora_adapters: round models served by OpenAI-compatible servers lmsi did not start (a
vLLM fleet), by loading each round's LoRA adapter into every server at run time.

vLLM offers this when started with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True:
POST {base_url}/load_lora_adapter {"lora_name", "lora_path"} registers an adapter, and completions
with "model": lora_name then use it. The server reads lora_path itself, so the adapter must be at
the same path there (a shared filesystem). The name holds the run, round and draw, and a digest of
the adapter's files: a resumed run finds its adapter already loaded (vLLM answers 400 "has already
been loaded", taken as success), and a retrained adapter gets a new name, never the old weights.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

from ..io import InputError
from .openai_http import ServerError, request_headers

SETUP = (
    "start each vLLM server with --enable-lora (and --max-lora-rank >= train.lora_r) and the environment "
    "variable VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
)
RETRIED = {429, 502, 503, 504}  # a busy or restarting server; any other answer is final


def adapter_name(run_dir: Path, model_dir: Path) -> str:
    """The server-side name of the adapter beside a round's merged model folder."""
    adapter = model_dir.parent / "adapter"
    files = sorted(p for p in adapter.iterdir() if p.is_file())
    stamp = "|".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    digest = hashlib.sha256(f"{adapter.absolute()}|{stamp}".encode()).hexdigest()[:10]
    where = f"{run_dir.name}-{model_dir.parent.relative_to(run_dir).as_posix()}"
    return f"lmsi-{re.sub(r'[^A-Za-z0-9_.-]', '_', where)}-{digest}"


class LoraFleet:
    def __init__(
        self, base_urls, api_key_env: str = "OPENAI_API_KEY", timeout: float = 120.0, retries: int = 5, log=print
    ):
        import requests

        self.requests = requests
        self.urls = [u.rstrip("/") for u in base_urls]
        self.key_env, self.timeout, self.retries, self.log = api_key_env, timeout, retries, log
        self.checked = False
        self.names: dict[str, str] = {}  # adapter folder -> its name, loaded on every server

    def _post(self, url: str, route: str, body: dict):
        headers = request_headers(self.key_env)
        err = ""
        for attempt in range(self.retries + 1):
            try:
                r = self.requests.post(f"{url}/{route}", json=body, headers=headers, timeout=self.timeout)
                if r.status_code not in RETRIED:
                    return r
                err = f"HTTP {r.status_code}"
            except self.requests.RequestException as e:
                err = f"{type(e).__name__}: {e}"
            if attempt < self.retries:
                time.sleep(min(10.0, 0.2 * 2**attempt))
        err = " ".join(err.split())[:300]
        raise ServerError(f"openai.lora_adapters: {url}/{route} failed {self.retries + 1} times; last error: {err}")

    def _missing_routes(self, url: str) -> ServerError:
        return ServerError(
            f"openai.lora_adapters: {url} has no load_lora_adapter route (HTTP 404), so it cannot load round adapters: {SETUP}"
        )

    def check(self) -> None:
        """Whether every server loads adapters at run time, asked once before anything samples: an
        empty request vLLM refuses (400), and a server without the route answers 404."""
        if self.checked:
            return
        for url in self.urls:
            if self._post(url, "load_lora_adapter", {"lora_name": "", "lora_path": ""}).status_code in (404, 405):
                raise self._missing_routes(url)
        self.checked = True

    def serve(self, model_dir: Path, run_dir: Path) -> str:
        """Load the adapter of a round's model into every server; the model name to request it by."""
        adapter = model_dir.parent / "adapter"
        if not any(adapter.glob("adapter_model.*")):  # PEFT's weights file
            raise InputError(
                f"{adapter}: no LoRA adapter beside {model_dir} (trained with train.adapter=full?); "
                "openai.lora_adapters serves LoRA rounds only: set openai.lora_adapters=false to sample it with hf"
            )
        if str(adapter) in self.names:
            return self.names[str(adapter)]
        self.check()
        name, path = adapter_name(run_dir, model_dir), str(adapter.absolute())
        for url in self.urls:
            r = self._post(url, "load_lora_adapter", {"lora_name": name, "lora_path": path})
            said = " ".join(r.text.split())[:300]
            if r.ok or (r.status_code == 400 and "already" in said):
                continue
            if r.status_code == 404 and "adapter" not in said.lower():  # no route (a route's own 404 names it)
                raise self._missing_routes(url)
            if r.status_code == 404 or "No adapter found" in said:
                raise ServerError(
                    f"openai.lora_adapters: {url} cannot read {path} (HTTP {r.status_code}: {said}); the run "
                    "directory must be at the same path on the servers (a shared filesystem)"
                )
            raise ServerError(
                f"openai.lora_adapters: {url} did not load {path} (HTTP {r.status_code}: {said}); {SETUP}"
            )
        self.log(f"openai.lora_adapters: {model_dir} is served as {name} by {len(self.urls)} server(s)")
        self.names[str(adapter)] = name
        return name
