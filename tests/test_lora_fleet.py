"""openai.lora_adapters: round models served by a fleet lmsi did not start, each round's LoRA adapter
loaded into every server (vLLM's runtime LoRA routes; fake-sampler servers stand in for vLLM)."""

from __future__ import annotations

import json

import pytest
from servers import FakeCompletions, LoraCompletions, start
from test_rounds import TINY
from typer.testing import CliRunner

from lmsi.cli import app
from lmsi.config import ConfigError, load_config
from lmsi.io import InputError
from lmsi.runtime import Runtime


def _fleet(n: int = 2) -> list[tuple[type, str]]:
    """n fake vLLM servers holding the base model as `base`; (handler class, base url) each."""
    out = []
    for _ in range(n):
        server, url = start(LoraCompletions, model="base", adapters={}, events=[], seen=[])
        out.append((server.RequestHandlerClass, url))
    return out


def _runtime(tmp_path, *overrides):
    cfg = load_config(overrides=[f"run_dir={tmp_path}", "backend=openai", "openai.served_model=base", *overrides])
    said = []
    return Runtime(cfg, tmp_path, log=said.append), said


def _adapter(run_dir, k: int = 1):
    """A round's folders as training leaves them: adapter/ beside the merged model/."""
    (run_dir / f"round_{k:02d}" / "model").mkdir(parents=True)
    adapter = run_dir / f"round_{k:02d}" / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    return adapter


def test_round_models_sample_from_the_fleet_under_their_adapter_name(tiny_model_dir, tmp_path, monkeypatch):
    """Two rounds over two servers: each round's adapter is loaded into both, round 2 samples from
    round 1's adapter by name, nothing falls back to hf; a resumed run reuses the loaded name."""
    secret = "sk-test-lora-DO-NOT-LEAK"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    fleet = _fleet(2)
    urls = ",".join(u for _, u in fleet)
    rd = tmp_path / "r"
    args = ["run", "--rounds", "2", "-r", str(rd), f"model={tiny_model_dir}", *TINY, "loop.stop=false"]
    lora = ["backend=openai", f"openai.base_urls=[{urls}]", "openai.served_model=base", "openai.lora_adapters=true"]
    r = CliRunner().invoke(app, [*args, *lora])
    assert r.exit_code == 0, r.output
    assert "sampler: hf" not in r.output
    loads = [[e[1:] for e in h.events if e[0] == "load"] for h, _ in fleet]
    assert loads[0] == loads[1] and [p for _, p in loads[0]] == [str(rd / f"round_{k:02d}" / "adapter") for k in (1, 2)]
    (n1, _), (n2, _) = loads[0]
    assert n1.startswith("lmsi-r-round_01-") and n2.startswith("lmsi-r-round_02-")
    seen = [s["body"] for h, _ in fleet for s in h.seen]
    assert {b["model"] for b in seen} == {"base", n1, n2} and all(h.seen for h, _ in fleet)
    # round 2's questions went to round 1's adapter, and only there
    questions = [json.loads(line)["question"] for line in (rd / "round_02" / "samples.jsonl").read_text().splitlines()]
    asked = {m: " ".join(b["prompt"] for b in seen if b["model"] == m) for m in ("base", n1)}
    assert questions and all(q in asked[n1] and q not in asked["base"] for q in questions)
    assert "served as" in r.output and secret not in r.output
    assert not [f for f in rd.rglob("*") if f.is_file() and secret in f.read_text(errors="ignore")]
    assert {h.loads_auth for h, _ in fleet} == {f"Bearer {secret}"}
    # a resumed run (a new process) finds the adapter loaded: the same name, no second load, no error
    resumed, _ = _runtime(rd, f"openai.base_urls=[{urls}]", "openai.lora_adapters=true")
    assert resumed.recipe(resumed.spec(1))["served_model"] == n1
    assert [[e[1:] for e in h.events if e[0] == "load"] for h, _ in fleet] == loads


def test_a_server_without_runtime_lora_fails_before_any_stage(tmp_path):
    """A server answering 404 on load_lora_adapter: exit 2, one line naming what to start vLLM with."""
    _, url = start(FakeCompletions, seen=[])
    rd = tmp_path / "run"
    r = CliRunner().invoke(
        app,
        ["run", "-r", str(rd), "data.limit=4", "eval.limit=2", "backend=openai", f"openai.base_urls=[{url}]"]
        + ["openai.lora_adapters=true", "openai.retries=0"],
    )
    assert r.exit_code == 2, r.output
    out = " ".join(r.output.split())
    assert "--enable-lora" in out and "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in out and "HTTP 404" in out
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output


def test_option_off_keeps_round_models_on_hf(tmp_path):
    [(handler, url)] = _fleet(1)
    _adapter(tmp_path)
    r, said = _runtime(tmp_path, f"openai.base_urls=[{url}]")
    assert r.recipe(r.spec(0))["served_model"] == "base"
    trained = r.recipe(r.spec(1))
    assert trained["backend"] == "hf" and "sampler: hf" in said[-1]
    assert r.lora is None and handler.events == []  # the servers are never asked about adapters


def test_adapters_the_servers_cannot_use_give_one_clear_error(tmp_path):
    [(handler, url)] = _fleet(1)
    adapter = _adapter(tmp_path)
    r, _ = _runtime(tmp_path, f"openai.base_urls=[{url}]", "openai.lora_adapters=true", "openai.retries=0")
    # a round trained without an adapter folder (full fine-tuning)
    (tmp_path / "round_02" / "model").mkdir(parents=True)
    with pytest.raises(InputError, match="openai.lora_adapters serves LoRA rounds only"):
        r.recipe(r.spec(2))
    # the server cannot read the adapter's path (no shared filesystem)
    handler.readable = False
    with pytest.raises(ConfigError, match=f"cannot read {adapter}.*same path on the servers"):
        r.recipe(r.spec(1))


@pytest.mark.parametrize(
    "extra,why",
    [
        (["train.adapter=full"], "train.adapter=full leaves no adapter"),
        (["loop.init=previous", "loop.rounds=2"], "round 2's adapter sits on round 1's model"),
        (["student=some/student"], "student"),
        (["openai.base_urls=[]"], "openai.base_urls is empty"),
    ],
)
def test_configs_the_fleet_cannot_serve_are_refused_at_the_start(extra, why):
    base = ["backend=openai", "openai.base_urls=[http://127.0.0.1:9/v1]", "openai.lora_adapters=true"]
    with pytest.raises(ConfigError, match="openai.lora_adapters") as e:
        load_config(overrides=[*base, *extra])
    assert why in str(e.value)
    load_config(overrides=[*base, *extra, "backend=hf"])  # the option means nothing off the openai backend
