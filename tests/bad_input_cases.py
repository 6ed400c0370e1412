"""Bad inputs a user may hand lmsi, each with the message it must get (a substring).

Shared by tests/test_bad_input.py and scripts/bad_input_table.py, which writes
docs/bad-input.md from the messages lmsi actually prints."""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from contextlib import contextmanager
from pathlib import Path

from servers import EmptyChoices, FakeCompletions, start

from lmsi import models

# What a case's build changed in this process (the CLI runs in it): undone by isolated().
_UNDO: list = []


@contextmanager
def isolated():
    """Run one case; afterwards undo what its build did to sys.path, sys.modules and registries."""
    try:
        yield
    finally:
        while _UNDO:
            _UNDO.pop()()


def _setitem(mapping, key, value) -> None:
    old = mapping.get(key, _UNDO)
    mapping[key] = value
    _UNDO.append(lambda: mapping.pop(key, None) if old is _UNDO else mapping.__setitem__(key, old))


def _delitem(mapping, key) -> None:
    old = mapping.pop(key)
    _UNDO.append(lambda: mapping.__setitem__(key, old))


def _on_path(folder: Path) -> None:
    sys.path.insert(0, str(folder))
    _UNDO.append(lambda: sys.path.remove(str(folder)))


def _tiny_gguf(path: Path) -> Path:
    """A small valid GGUF file (one tensor, no model in it)."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("t", np.arange(256, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


DEMO_PIN = hashlib.sha256(b"the bytes lmsi was released with").hexdigest()


def _tampered_embedded(t: Path) -> list[str]:
    """An embedded model `demo` whose two chunks are not the bytes its pinned digest names."""
    pkg = t / "site" / "lmsi_demo_model"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    data = _tiny_gguf(t / "demo.gguf").read_bytes()
    (pkg / "data" / "part1.bin").write_bytes(data[:300])
    (pkg / "data" / "part2.bin").write_bytes(data[300:])
    _on_path(t / "site")
    _setitem(models.EMBEDDED, "demo", ([("lmsi_demo_model", f"data/part{i}.bin") for i in (1, 2)], "a demo"))
    _setitem(models.EMBEDDED_SHA256, "demo", DEMO_PIN)
    return ["model=embedded:demo", "backend=hf"]


def _empty_choices_server(t: Path) -> list[str]:
    server, url = start(EmptyChoices)
    _UNDO.append(server.shutdown)
    return ["backend=openai", f"openai.base_urls=[{url}]", "openai.retries=1"]


def _fleet_without_runtime_lora(t: Path) -> list[str]:
    server, url = start(FakeCompletions, seen=[])  # answers 404 on /v1/load_lora_adapter, as vLLM does without it
    _UNDO.append(server.shutdown)
    return ["backend=openai", f"openai.base_urls=[{url}]", "openai.lora_adapters=true", "openai.retries=1"]


def _llama_cpp_without_diskcache(t: Path) -> list[str]:
    """llama-cpp-python installed without its dependencies (pip install --no-deps)."""
    pkg = t / "site" / "llama_cpp"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import diskcache  # noqa: F401\n")
    for name in [k for k in sys.modules if k == "llama_cpp" or k.startswith("llama_cpp.")]:
        _delitem(sys.modules, name)  # a llama_cpp imported earlier in this process would hide it
    _setitem(sys.modules, "diskcache", None)  # None in sys.modules: `import diskcache` fails
    _on_path(t / "site")
    return ["backend=llamacpp", f"model={_tiny_gguf(t / 'm.gguf')}"]


def _jsonl(path: Path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return f"data.task=file:{path}"


def _q(i: int) -> dict:
    return {
        "id": f"q{i}",
        "question": f"Ann has {i} apples and buys {i + 2} more. How many apples now?",
        "answer": 2 * i + 2,
    }


# (name, build(tmp) -> CLI args after `lmsi run -r <dir> backend=fake`, expected message fragment)
CASES = [
    ("malformed JSONL line", lambda t: [_jsonl(t / "q.jsonl", [_q(1), "{oops"])], "q.jsonl:2: malformed JSON"),
    (
        "missing / renamed question field",
        lambda t: [_jsonl(t / "q.jsonl", [{"text": "What is 2+2?"}])],
        "q.jsonl:1: field 'question' missing or not a string (fields: ['text'])",
    ),
    ("empty question", lambda t: [_jsonl(t / "q.jsonl", [_q(1), {"question": "  "}])], "q.jsonl:2: empty question"),
    ("duplicate ids", lambda t: [_jsonl(t / "q.jsonl", [_q(1), _q(1)])], "q.jsonl:2: duplicate id 'q1'"),
    (
        "non-UTF-8 bytes",
        lambda t: [(t / "q.jsonl").write_bytes(b'{"question": "caf\xe9?"}\n') and f"data.task=file:{t / 'q.jsonl'}"],
        "q.jsonl:1: not valid UTF-8",
    ),
    (
        "a 1 MB question",
        lambda t: [_jsonl(t / "q.jsonl", [{"question": "x " * 500_000 + "?"}])],
        "q.jsonl:1: question is 1,000,001 characters",
    ),
    (
        "answer field of the wrong type",
        lambda t: [
            _jsonl(t / "q.jsonl", [_q(1)]),
            _jsonl(t / "gold.jsonl", [{"question": "What is 1+1?", "answer": {"value": 2}}]).replace(
                "data.task", "eval.task"
            ),
        ],
        "gold.jsonl:1: field 'answer' must be a number",
    ),
    (
        "empty dataset",
        lambda t: [(t / "q.jsonl").write_text("") or f"data.task=file:{t / 'q.jsonl'}"],
        "q.jsonl: no questions found",
    ),
    (
        "dataset smaller than the few-shot count (self-made exemplars)",
        lambda t: [_jsonl(t / "q.jsonl", [_q(1)]), "selfgen.exemplars=true", "sample.shots=3"],
        "self-generated exemplars: 1 usable of the 3 shots needed",
    ),
    (
        "model path that does not exist",
        lambda t: ["model=/nope/model.gguf", "backend=hf"],
        "model file not found: /nope/model.gguf",
    ),
    (
        "truncated GGUF",
        lambda t: [
            (t / "m.gguf").write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 290, 24) + b"\x05\x00")
            and f"model={t / 'm.gguf'}",
            "backend=hf",
        ],
        "GGUF file is truncated or corrupt",
    ),
    (
        "a config file giving a key twice",
        lambda t: [(t / "c.yaml").write_text("model: a\nmodel: b\n") and "--config", str(t / "c.yaml")],
        "c.yaml:2:1: invalid YAML (key 'model' is given twice)",
    ),
    ("unknown config key", lambda t: ["sample.paths=8"], "unknown config key 'sample.paths'"),
    ("m = 0", lambda t: ["sample.m=0"], "config key 'sample.m' is 0; must be >= 1"),
    ("T < 0", lambda t: ["sample.temperature=-0.5"], "config key 'sample.temperature' is -0.5; must be >= 0.0"),
    ("threshold > 1", lambda t: ["build.threshold=1.5"], "config key 'build.threshold' is 1.5; must be <= 1.0"),
    ("wrong value type", lambda t: ["sample.m=eight"], "config key 'sample.m' must be int, got 'eight'"),
    ("unknown task", lambda t: ["data.task=gsm9k"], "unknown task 'gsm9k'"),
    ("eval split equal to the unlabeled split", lambda t: ["eval.split=train"], "contamination guard"),
    (
        "a server answering with empty choices",
        _empty_choices_server,
        "empty choices in the reply",
    ),
    (
        "a vLLM fleet started without runtime LoRA loading (openai.lora_adapters)",
        _fleet_without_runtime_lora,
        "start each vLLM server with --enable-lora (and --max-lora-rank >= train.lora_r) and the environment "
        "variable VLLM_ALLOW_RUNTIME_LORA_UPDATING=True",
    ),
    ("an embedded model whose bytes are not the pinned ones", _tampered_embedded, f"but lmsi pins {DEMO_PIN}"),
    (
        "llama-cpp-python installed without its dependencies",
        _llama_cpp_without_diskcache,
        "No module named 'diskcache'; pip install diskcache",
    ),
    (
        "a server command without {port}",
        lambda t: ["backend=openai", "openai.serve=llama-server -m {gguf}"],
        "config key 'openai.serve' is 'llama-server -m {gguf}': give {port}",
    ),
    (
        "a server command that exits at start",
        lambda t: ["backend=openai", "openai.serve=false --port {port} --model {model}", "model=hf-internal/none"],
        "openai.serve: the server exited at start (code 1)",
    ),
]
