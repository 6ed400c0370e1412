"""`lmsi export`: a tiny real run exported, then loaded for real (transformers offline, llama.cpp
for the GGUF); the model card's metadata, numbers and commands; the errors, one line each."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml
from test_rounds import TINY
from typer.testing import CliRunner

from lmsi.cli import app
from lmsi.gguf_export import export_gguf

runner = CliRunner()


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---", 2)[1])


def _one_line_error(r, fragment: str) -> None:
    assert r.exit_code == 2, r.output
    assert len(r.output.strip().splitlines()) == 1 and fragment in r.output, r.output


def _cell(s: dict) -> str:  # report._fmt: accuracy % [CI low–high]
    return f"{100 * s['accuracy']:.1f} [{100 * s['ci95'][0]:.0f}–{100 * s['ci95'][1]:.0f}]"


def _tiny_gguf(hf: Path, out: Path) -> Path:
    """The tiny transformers model as a qwen2 GGUF: its config and BPE tokenizer as GGUF metadata
    (a tensor-free base), then its weights through the exporter itself."""
    import gguf

    cfg = json.loads((hf / "config.json").read_text())
    tj = json.loads((hf / "tokenizer.json").read_text())
    vocab = [t for t, _ in sorted(tj["model"]["vocab"].items(), key=lambda kv: kv[1])]
    special = {t["content"] for t in tj["added_tokens"]}
    meta = out.with_name("meta.gguf")
    w = gguf.GGUFWriter(str(meta), "qwen2")
    w.add_name("tiny")
    w.add_license("apache-2.0")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(vocab)
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in vocab])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_pad_token_id(cfg["eos_token_id"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return export_gguf(hf, meta, out)


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory):
    rd = tmp_path_factory.mktemp("export") / "run"
    r = runner.invoke(app, ["run", "-r", str(rd), f"model={tiny_model_dir}", *TINY])
    assert r.exit_code == 0, r.output
    return rd


def test_export_loads_offline_with_its_card(run_dir, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmsi.rundir import RunDir

    out = tmp_path / "out"
    args = ["export", str(run_dir), str(out)]
    monkeypatch.setattr("sys.argv", ["lmsi", *args])  # what the card records as the export command
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert not out.with_name("out.tmp").exists()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert (out / "generation_config.json").exists() and tok("1 + 2")["input_ids"]
    trained = load_file(str(run_dir / "round_01/model/model.safetensors"))
    state = model.state_dict()
    assert trained and all(torch.equal(state[k].to(v.dtype), v) for k, v in trained.items())

    card = (out / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["base_model"] == RunDir(run_dir).config["model"] and meta["library_name"] == "transformers"
    assert meta["tags"] == ["lmsi", "self-improvement"] and meta["license"] == "other"  # a folder with no licence
    assert "see the base model" in card and "after 1 round(s)" in card and "sft, lora" in card
    before = json.loads((run_dir / "eval_base/summary.json").read_text())
    after = json.loads((run_dir / "round_01/eval/summary.json").read_text())
    modes = [m for m in ("greedy_cot", "sc", "direct") if m in after]
    assert modes and all(f"| {_cell(before[m])} | {_cell(after[m])} |" in card for m in modes)
    assert all(c in card for c in RunDir(run_dir).commands()) and f"lmsi export {run_dir} {out}" in card

    # OUT exists and is not empty: refused, then replaced with --force
    _one_line_error(runner.invoke(app, ["export", str(run_dir), str(out)]), "pass --force")
    assert runner.invoke(app, ["export", str(run_dir), str(out), "--round", "1", "--force"]).exit_code == 0
    assert (out / "README.md").read_text().count("```") == 2


def test_export_errors_are_one_line(run_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _one_line_error(runner.invoke(app, ["export", str(run_dir), str(out), "--round", "5"]), "round 5 has no trained")
    _one_line_error(runner.invoke(app, ["export", str(run_dir), str(out), "--gguf"]), "needs the base model as a GGUF")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(run_dir / "config.yaml", fresh)
    shutil.copytree(run_dir / "eval_base", fresh / "eval_base")
    _one_line_error(runner.invoke(app, ["export", str(fresh), str(out)]), "no round has trained a model")
    _one_line_error(runner.invoke(app, ["export", str(tmp_path / "none"), str(out)]), "is this an lmsi run")
    assert not out.exists() and not (tmp_path / "out.tmp").exists()
    # no network here: the upload fails with one line, and the exported folder is kept whole
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_token")
    r = runner.invoke(app, ["export", str(run_dir), str(out), "--push-to-hub", "me/tiny"])
    assert r.exit_code == 2 and "upload to me/tiny failed" in r.output and "hf_not_a_token" not in r.output
    assert (out / "README.md").exists() and (out / "model.safetensors").exists()


@pytest.mark.skipif(not importlib.util.find_spec("llama_cpp"), reason="llama-cpp-python not installed")
def test_gguf_export_loads_in_llama_cpp(tiny_model_dir, tmp_path, monkeypatch):
    import llama_cpp
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("LMSI_CACHE", str(tmp_path / "cache"))  # where the GGUF base is converted for training
    base = _tiny_gguf(tiny_model_dir, tmp_path / "tiny.gguf")
    rd, out = tmp_path / "run", tmp_path / "out"
    r = runner.invoke(app, ["run", "-r", str(rd), f"model={base}", *TINY])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["export", str(rd), str(out), "--gguf"])
    assert r.exit_code == 0, r.output
    card = (out / "README.md").read_text()
    assert _front_matter(card)["license"] == "apache-2.0" and "model-q8_0.gguf" in card  # the GGUF's licence

    llm = llama_cpp.Llama(model_path=str(out / "model-q8_0.gguf"), n_ctx=64, logits_all=True, verbose=False)
    try:
        ids = llm.tokenize(b"12 + 30 =", add_bos=False)
        llm.eval(ids)
        theirs = np.array(llm.scores[: len(ids)])
    finally:
        llm.close()
    hf = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    with torch.no_grad():
        mine = hf(torch.tensor([ids])).logits[0].numpy()
    # the same model: llama.cpp's logits (Q8_0 weights) match the folder's within quantisation noise
    assert np.abs(theirs - mine).max() < 0.02 * (np.abs(mine).max() + 1e-6) + 1e-3


@pytest.mark.slow
@pytest.mark.skipif(not importlib.util.find_spec("llama_cpp"), reason="llama-cpp-python not installed")
def test_round_models_sample_from_a_server_restarted_on_their_weights(tmp_path):
    """openai.serve on the embedded model: the real llama.cpp server on loopback, started by lmsi
    on the base GGUF, then on round 1's exported GGUF for round 1's evaluation and round 2's
    sampling; no stage falls back to the local sampler, and no server outlives the run."""
    import subprocess
    import sys

    rd = tmp_path / "run"
    serve = f"{sys.executable} -m llama_cpp.server --model {{gguf}} --host 127.0.0.1 --port {{port}} --n_ctx 2048"
    small = ["data.limit=2", "sample.m=2", "sample.max_new_tokens=96", "sample.shots=1", "build.threshold=0.0"]
    small += ["build.max_rows=4", "train.batch_size=2", "eval.limit=2", "eval.modes=[greedy_cot]", "dtype=float32"]
    over = ["-r", str(rd), "loop.stop=false", "backend=openai", *small, f"openai.serve={serve}"]
    r = runner.invoke(app, ["run", *over])  # round 1, evaluated through a server on its own weights
    assert r.exit_code == 0, r.output
    out = r.output
    r = runner.invoke(app, ["sample", "-k", "2", *over])  # round 2 samples from round 1's model
    assert r.exit_code == 0, r.output
    out += r.output
    started = [line for line in out.splitlines() if "openai.serve: starting" in line]
    served = [line.split("--model ")[1].split()[0] for line in started]
    round1 = str(rd / "round_01" / "model" / "model.gguf")
    assert len(served) == 3 and served[0].endswith(".gguf") and served[1:] == [round1, round1], served
    assert "sampler: hf" not in out and (rd / "round_02" / "samples.jsonl").exists()
    assert "Uvicorn running" in (rd / "server.log").read_text()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(rd / "round_01") not in ps  # the round's server was stopped


def test_serve_command_errors_are_one_line(tmp_path):
    rd = tmp_path / "run"
    r = runner.invoke(app, ["run", "-r", str(rd), "backend=openai", "openai.serve=llama-server -m {model}"])
    _one_line_error(r, "give {port}")
    r = runner.invoke(app, ["run", "-r", str(rd), "backend=openai", "openai.serve=false --port {port} {gguf}"])
    assert r.exit_code == 2 and "the server exited at start" in r.output, r.output
