"""Local HTTP servers for backend tests: a completions server backed by the fake sampler, a
fault-injecting proxy that can sit in front of any server (llama.cpp's included), and a helper
that starts the real llama.cpp server on the embedded model when llama-cpp-python is installed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Base(BaseHTTPRequestHandler):
    def log_message(self, *a):  # keep test output clean
        pass

    def _send(self, code: int, payload: bytes, ctype: str = "application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def start(handler_cls, **attrs) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), type("H", (handler_cls,), attrs))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


class FakeCompletions(_Base):
    """/v1/completions answered by the fake sampler; records the headers it saw."""

    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self.path.endswith("/completions"):  # what a server answers for a route it lacks
            return self._send(404, b'{"detail": "Not Found"}')
        self.seen.append({"headers": dict(self.headers), "body": body})
        self._complete(body)

    def _complete(self, body: dict):
        from lmsi.backends import SamplingParams
        from lmsi.backends.fake import FakeSampler

        n = body.get("n", 1)
        params = SamplingParams(n=n, temperature=body["temperature"], seed=body.get("seed", 0))
        texts = FakeSampler().generate([body["prompt"]], params)[0]
        self._send(200, json.dumps({"choices": [{"index": i, "text": t} for i, t in enumerate(texts)]}).encode())

    def do_GET(self):  # /v1/models: what a server started by openai.serve is polled with
        self._send(200, json.dumps({"data": [{"id": self.model}]}).encode())

    model = "fake"


class LoraCompletions(FakeCompletions):
    """FakeCompletions plus vLLM's runtime LoRA routes, answered as vLLM answers them. `events` gets
    ("load", name, path), ("unload", name) and ("complete", model) in order; a completion for a
    model that is neither `model` nor a loaded adapter gets vLLM's 404."""

    adapters: dict = {}
    events: list = []
    readable = True  # False: a server that does not share lmsi's filesystem
    loads_auth = None  # the Authorization header of the last load

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name, path = body.get("lora_name"), body.get("lora_path")
        if self.path == "/v1/load_lora_adapter":
            if not name or not path:
                return self._error(400, "Both 'lora_name' and 'lora_path' must be provided.")
            if name in self.adapters:
                return self._error(400, f"The lora adapter '{name}' has already been loaded.")
            if not (self.readable and os.path.isfile(os.path.join(path, "adapter_config.json"))):
                return self._error(404, f"Loading lora {name} failed: No adapter found for {path}")
            self.adapters[name] = path
            self.events.append(("load", name, path))
            type(self).loads_auth = self.headers.get("Authorization")
            return self._send(200, f"Success: LoRA adapter '{name}' added successfully.".encode(), "text/plain")
        if self.path == "/v1/unload_lora_adapter":
            if self.adapters.pop(name, None) is None:
                return self._error(404, f"The lora adapter '{name}' cannot be found.")
            self.events.append(("unload", name))
            return self._send(200, b"Success", "text/plain")
        if body.get("model") not in (self.model, *self.adapters):
            return self._error(404, f"The model `{body.get('model')}` does not exist.")
        self.events.append(("complete", body["model"]))
        self.seen.append({"headers": dict(self.headers), "body": body})
        self._complete(body)

    def _error(self, code: int, message: str):
        kind = "NotFoundError" if code == 404 else "BadRequestError"
        self._send(code, json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode())


class EmptyChoices(_Base):
    """A completions server that answers every request with a well-formed reply holding no choices."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self._send(200, b'{"id": "cmpl-0", "object": "text_completion", "choices": []}')


class FaultProxy(_Base):
    """Forwards to `upstream`, but answers the k-th request with `faults[k]` when set:
    429, 500, 'reset' (close without a reply), 'garbage' (malformed JSON), 'empty' (a well-formed
    reply with an empty `choices` list), 'slow' (sleep past the timeout)."""

    upstream = ""
    faults: dict = {}
    count = [0]
    lock = threading.Lock()

    def do_POST(self):
        with self.lock:
            k = self.count[0]
            self.count[0] += 1
        fault = self.faults.get(k)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if fault in (429, 500, 503):
            return self._send(fault, b'{"error": "injected"}')
        if fault == "reset":
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "garbage":
            return self._send(200, b'{"choices": [{"text": "trunc')
        if fault == "empty":
            return self._send(200, b'{"id": "cmpl-0", "object": "text_completion", "choices": []}')
        if fault == "slow":
            time.sleep(3)
        req = urllib.request.Request(
            self.upstream.rstrip("/") + self.path.removeprefix("/v1"),
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=600) as r:
            self._send(r.status, r.read())


def start_llama_server(model_path: str, timeout: float = 120.0):
    """The real llama.cpp server (llama-cpp-python[server]) on 127.0.0.1; returns (process, base_url)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            model_path,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--verbose",
            "false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/v1/models", timeout=2)
            return proc, url + "/v1"
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("llama.cpp server exited at start") from None
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("llama.cpp server did not start")


if __name__ == "__main__":  # a fake-sampler server on a given port, as openai.serve starts one
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", default="fake")
    a = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), type("H", (FakeCompletions,), {"model": a.model}))
    print(f"serving {a.model} on {a.port}", flush=True)
    server.serve_forever()
