"""Any OpenAI-compatible completions server (llama.cpp server, vLLM, SGLang, TGI) as a sampler.

Requests go to `/v1/completions` with `n` paths each (servers that return fewer get follow-up
requests), spread over one or more endpoints with a bounded number in flight per endpoint.
Timeouts, connection resets, HTTP 429/5xx, malformed JSON and replies with no choices are
retried with exponential backoff and jitter, a bounded number of times; an endpoint that keeps
failing is rested and the others take its work. The API key is read from the environment
variable named in the config, at request time, and is never written anywhere.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ..config import ConfigError
from .base import SamplingParams, cut_at_stop

# Servers differ in their sampling defaults (llama.cpp: top_k 40, min_p 0.05, repeat penalty
# 1.1); these make them sample plain temperature/top-p like the other backends.
PLAIN_SAMPLING = {"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}


class RemoteError(RuntimeError):
    """One failed attempt: retried."""


class ServerError(ConfigError, RuntimeError):
    """The configured server did not serve a request in all its attempts, or refused it (HTTP 4xx):
    the server or openai.* to fix, not a bug in lmsi (the CLI prints it as one line, exit 2)."""


def request_headers(key_env: str) -> dict:
    """JSON headers, with the API key from the environment variable `key_env` when it is set: read
    at request time, sent, never written anywhere."""
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(key_env)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


class _Endpoint:
    def __init__(self, url: str, slots: int):
        self.url = url.rstrip("/")
        self.slots = threading.Semaphore(slots)
        self.failures = 0
        self.rest_until = 0.0
        self.served = 0


class OpenAISampler:
    name = "openai"
    prompt_seeds = True  # SamplingParams.seeds: each prompt its own request seed

    def __init__(
        self,
        model=None,
        base_urls=(),
        served_model: str = "",
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        timeout: float = 120.0,
        retries: int = 5,
        extra_body: dict | None = None,
        **_,
    ):
        if not base_urls:
            raise RuntimeError("the openai backend needs openai.base_urls (e.g. [http://127.0.0.1:8080/v1])")
        import requests

        self.requests = requests
        self.endpoints = [_Endpoint(u, concurrency) for u in base_urls]
        self.model, self.key_env = served_model, api_key_env
        self.timeout, self.retries = timeout, retries
        self.extra = PLAIN_SAMPLING if extra_body is None else extra_body
        self.pool = ThreadPoolExecutor(max_workers=concurrency * len(self.endpoints))
        self._lock = threading.Lock()
        self._next = 0

    # -- one request, with retries over endpoints ------------------------------
    def _pick_endpoint(self) -> _Endpoint:
        with self._lock:
            now = time.time()
            live = [e for e in self.endpoints if e.rest_until <= now] or self.endpoints
            self._next += 1
            return live[self._next % len(live)]

    def _post(self, body: dict) -> list[str]:
        err = "no attempt"
        for attempt in range(self.retries + 1):
            ep = self._pick_endpoint()
            with ep.slots:
                try:
                    headers = request_headers(self.key_env)
                    r = self.requests.post(f"{ep.url}/completions", json=body, headers=headers, timeout=self.timeout)
                    if r.status_code == 429 or r.status_code >= 500:
                        raise RemoteError(f"HTTP {r.status_code}")
                    if r.status_code >= 400:  # a bad request will not get better by retrying
                        raise ServerError(f"{ep.url}: HTTP {r.status_code}: {' '.join(r.text[:300].split())}")
                    texts = [c["text"] for c in sorted(r.json()["choices"], key=lambda c: c.get("index", 0))]
                    if not texts:  # no path in it: re-requesting at once would loop forever
                        raise RemoteError("empty choices in the reply")
                    if not all(isinstance(t, str) for t in texts):
                        raise RemoteError("choices without text")
                    with self._lock:
                        ep.failures, ep.served = 0, ep.served + 1
                    return texts
                except ServerError:
                    raise
                except (self.requests.RequestException, RemoteError, KeyError, TypeError, ValueError) as e:
                    what = str(e) if isinstance(e, RemoteError) else f"{type(e).__name__}: {e}"
                    err = " ".join(f"{ep.url}: {what}".split())[:300]
                    with self._lock:
                        ep.failures += 1
                        if ep.failures >= 2:  # rest a failing endpoint; the others take its work
                            ep.rest_until = time.time() + min(30.0, 2.0**ep.failures)
            time.sleep(min(10.0, 0.2 * 2**attempt) * (0.5 + random.random()))
        raise ServerError(f"openai backend: request failed after {self.retries + 1} attempts; last error: {err}")

    def _paths(self, prompt: str, n: int, temperature: float, params: SamplingParams, seed: int) -> list[str]:
        out: list[str] = []
        while len(out) < n:  # servers without `n` support answer one path per request
            body = {
                "model": self.model,
                "prompt": prompt,
                "n": n - len(out),
                "temperature": temperature,
                "top_p": params.top_p,
                "max_tokens": params.max_new_tokens,
                "stop": list(params.stop)[:4],
                "seed": seed + len(out),
                **self.extra,
            }
            out += self._post(body)[: n - len(out)]
        return [cut_at_stop(t, params.stop)[0] for t in out]

    def generate(self, prompts: list[str], params: SamplingParams, progress=None) -> list[list[str]]:
        def one(i: int) -> list[str]:
            seed = params.seeds[i] if params.seeds else params.seed + 1000 * i
            greedy = (
                self._paths(prompts[i], 1, 0.0, params, seed) if params.greedy_first or params.temperature <= 0 else []
            )
            rest = params.n - len(greedy)
            return greedy + (self._paths(prompts[i], rest, params.temperature, params, seed + 1) if rest else [])

        futures = [self.pool.submit(one, i) for i in range(len(prompts))]
        out = []
        for f in futures:
            out.append(f.result())
            if progress:
                progress(len(out))
        return out
