"""openai.serve: an OpenAI-compatible server that lmsi starts on 127.0.0.1 for one model at a time,
so that round k samples from a server holding round k-1's weights (a server restarted on them)
instead of falling back to the local torch sampler.

The command is the user's (llama.cpp's server, vLLM, ...), with {gguf} or {model} and {port} filled
in; its output goes to server.log in the run directory. The process dies with lmsi (Linux: the
kernel's parent-death signal; elsewhere at exit), and `stop` ends it before training needs the memory.
"""

from __future__ import annotations

import atexit
import ctypes
import shlex
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ..config import ConfigError
from ..io import InputError

FIELDS = {"gguf", "model", "port"}


def template_fields(template: str) -> set[str]:
    """The placeholders of a serve command; unknown ones or one without {port} are refused."""
    used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    if used - FIELDS or "port" not in used or not used & {"gguf", "model"}:
        raise ConfigError(
            f"config key 'openai.serve' is {template!r}: give {{port}} and {{gguf}} or {{model}} "
            f"(fields: {sorted(FIELDS)}), "
            f"e.g. 'python -m llama_cpp.server --model {{gguf}} --port {{port}}'"
        )
    return used


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalServer:
    def __init__(self, template: str, log_file: Path, log=print, start_timeout: float = 600.0):
        self.template, self.log_file, self.log, self.start_timeout = template, Path(log_file), log, start_timeout
        self.fields = template_fields(template)
        self.proc: subprocess.Popen | None = None
        self.key: str | None = None
        self.url = ""
        atexit.register(self.stop)

    def url_for(self, key: str, **fields: str) -> str:
        """The base URL of a server holding model `key` (started, or the running one if it holds it)."""
        if self.proc and self.proc.poll() is None and self.key == key:
            return self.url
        self.stop()
        port = _free_port()
        argv = shlex.split(self.template.format(port=port, **fields))
        self.log(f"openai.serve: starting {shlex.join(argv)} (output: {self.log_file})")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=out, preexec_fn=_die_with_parent)
        self.key, self.url = key, f"http://127.0.0.1:{port}/v1"
        self._wait()
        return self.url

    def _wait(self) -> None:
        deadline = time.time() + self.start_timeout
        while time.time() < deadline:
            code = self.proc.poll()
            if code is not None:
                tail = self.log_file.read_text(errors="replace").splitlines()[-5:]
                self.proc = self.key = None
                said = (
                    f"last lines of {self.log_file}:\n  " + "\n  ".join(tail) if tail else f"{self.log_file} is empty"
                )
                raise InputError(f"openai.serve: the server exited at start (code {code}); {said}")
            try:
                urllib.request.urlopen(self.url + "/models", timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise InputError(f"openai.serve: no answer from {self.url}/models within {self.start_timeout:.0f} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc, self.key = None, None
