"""runtime: which backend `auto` picks, and one recipe for every sampler."""

from __future__ import annotations

from pathlib import Path

from lmsi import runtime as rt
from lmsi.config import load_config


def _runtime(tmp_path, *overrides):
    cfg = load_config(overrides=[f"run_dir={tmp_path}", *overrides])
    said = []
    return rt.Runtime(cfg, tmp_path, log=said.append), said


def test_auto_falls_back_to_hf_when_llama_cpp_is_installed_but_broken(tmp_path, monkeypatch):
    monkeypatch.setattr(rt.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(rt, "gguf_file", lambda spec: Path("m.gguf"))
    r, said = _runtime(tmp_path, "backend=auto")
    monkeypatch.setattr(rt, "llama_cpp_import_error", lambda: "llama-cpp-python is installed but does not import")
    assert r.backend_for("m.gguf") == "hf" and "does not import" in said[-1]
    monkeypatch.setattr(rt, "llama_cpp_import_error", lambda: None)
    assert r.backend_for("m.gguf") == "llamacpp"
    monkeypatch.setattr(rt, "gguf_file", lambda spec: None)  # a transformers checkpoint has no GGUF
    assert r.backend_for("some/dir") == "hf"


def test_round_models_sample_with_hf_when_an_openai_server_holds_the_base(tmp_path):
    r, _ = _runtime(tmp_path, "backend=openai", "openai.base_urls=[http://127.0.0.1:9/v1]")
    assert r.recipe(r.spec(0))["backend"] == "openai"
    trained = r.recipe(r.spec(1, draw=2))
    assert trained["backend"] == "hf" and trained["spec"].endswith("round_01/draw_2/model")


def test_dtype_auto_is_measured_once_per_run_and_kept_on_resume(tmp_path, monkeypatch):
    """dtype=auto times bf16 against fp32; a resumed run must not pick the other one (its paths
    would differ from the ones already committed)."""
    picks = iter(["bfloat16", "float32"])
    monkeypatch.setattr(rt, "pick_dtype", lambda dtype="auto": next(picks))
    first, _ = _runtime(tmp_path)
    assert first.dtype == "bfloat16"
    resumed, _ = _runtime(tmp_path)
    assert resumed.dtype == "bfloat16" and resumed.recipe("some/dir")["dtype"] == "bfloat16"
    pinned, _ = _runtime(tmp_path / "other", "dtype=float32")
    assert pinned.dtype == "float32"
