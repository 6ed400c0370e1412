"""The OpenAI-compatible backend: retries through injected faults, balances endpoints, routes
around a dead one, keeps the API key out of every file, and (when llama-cpp-python[server] is
installed) samples from a real llama.cpp server."""

import importlib.util
import threading

import pytest
from servers import FakeCompletions, FaultProxy, start, start_llama_server

from lmsi.backends import SamplingParams, get_sampler

PARAMS = SamplingParams(n=3, temperature=0.7, max_new_tokens=16, stop=("\nQ:",), seed=5)
PROMPTS = [f"Q: What is {i} + {i}?\nA:" for i in range(6)]


def _sampler(urls, **kw):
    return get_sampler(
        "openai", None, base_urls=urls, timeout=kw.pop("timeout", 5.0), retries=kw.pop("retries", 6), **kw
    )


def test_faults_are_retried_and_results_match_a_clean_run():
    _, upstream = start(FakeCompletions)
    clean = _sampler([upstream]).generate(PROMPTS, PARAMS)
    faults = {0: 429, 1: 500, 2: "reset", 3: "garbage", 5: 503, 8: "slow"}
    count = [0]
    _, proxy = start(FaultProxy, upstream=upstream, faults=faults, count=count)
    got = _sampler([proxy], timeout=1.5).generate(PROMPTS, PARAMS)
    assert count[0] == len(PROMPTS) + len(faults)  # each fault cost exactly one retry
    assert got == clean  # every injected failure was retried; nothing lost, nothing doubled
    assert all(len(p) == 3 for p in got)


def test_gives_up_with_a_clear_error():
    _, proxy = start(FaultProxy, upstream="http://127.0.0.1:9", faults={i: 500 for i in range(50)}, count=[0])
    with pytest.raises(RuntimeError, match="after 3 attempts; last error: .*HTTP 500"):
        _sampler([proxy], retries=2).generate(PROMPTS[:1], PARAMS)


class _Always(dict):
    """A fault table that answers every request with the same fault."""

    def __init__(self, fault):
        super().__init__()
        self.fault = fault

    def get(self, k, default=None):
        return self.fault


def test_empty_choices_are_a_bad_reply_with_bounded_retries():
    """A server answering `{"choices": []}` to everything once made the sampler re-request
    forever (no path arrived, so the loop asking for the missing ones never ended)."""
    count = [0]
    server, proxy = start(FaultProxy, upstream="http://127.0.0.1:9", faults=_Always("empty"), count=count)
    caught: list[BaseException] = []

    def call():
        try:
            _sampler([proxy], retries=2).generate(PROMPTS[:1], SamplingParams(n=2, temperature=0.7, max_new_tokens=8))
        except BaseException as e:
            caught.append(e)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(30)
    hung, requests_made = t.is_alive(), count[0]
    server.shutdown()  # ends a hung loop too (its next request is refused)
    server.server_close()
    assert not hung, f"still re-requesting after 30 s ({requests_made} requests to a server that only says [])"
    assert len(caught) == 1 and isinstance(caught[0], RuntimeError), caught
    assert "after 3 attempts; last error: " in str(caught[0]) and "empty choices" in str(caught[0])
    assert count[0] == 3  # each empty reply counted as one failed attempt, like a 500


def test_an_empty_choices_reply_is_retried_like_any_fault():
    _, upstream = start(FakeCompletions)
    clean = _sampler([upstream]).generate(PROMPTS, PARAMS)
    count = [0]
    _, proxy = start(FaultProxy, upstream=upstream, faults={0: "empty", 4: "empty"}, count=count)
    s = _sampler([proxy])
    assert s.generate(PROMPTS, PARAMS) == clean
    assert count[0] == len(PROMPTS) + 2
    assert s.endpoints[0].served == len(PROMPTS)  # an empty reply is not counted as served


def test_two_endpoints_share_work_and_a_dead_one_is_routed_around():
    _, a = start(FakeCompletions)
    _, b = start(FakeCompletions)
    s = _sampler([a, b])
    s.generate(PROMPTS, PARAMS)
    assert all(e.served > 0 for e in s.endpoints)
    dead = "http://127.0.0.1:9/v1"  # nothing listens on port 9
    s = _sampler([dead, a])
    out = s.generate(PROMPTS, PARAMS)
    assert len(out) == len(PROMPTS) and s.endpoints[1].served >= len(PROMPTS)


def test_api_key_is_sent_but_never_written(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lmsi.cli import app

    secret = "sk-test-DO-NOT-LEAK-12345"
    monkeypatch.setenv("LMSI_TEST_KEY", secret)
    FakeCompletions.seen = []
    _, url = start(FakeCompletions, seen=FakeCompletions.seen)
    rd = tmp_path / "run"
    r = CliRunner().invoke(
        app,
        [
            "sample",
            "-r",
            str(rd),
            "backend=openai",
            f"openai.base_urls=[{url}]",
            "openai.api_key_env=LMSI_TEST_KEY",
            "data.limit=2",
            "sample.m=2",
        ],
    )
    assert r.exit_code == 0, r.output
    assert FakeCompletions.seen[0]["headers"]["Authorization"] == f"Bearer {secret}"
    for f in rd.rglob("*"):
        if f.is_file():
            assert secret not in f.read_text(errors="ignore"), f
    assert secret not in r.output


@pytest.mark.slow
@pytest.mark.skipif(not importlib.util.find_spec("llama_cpp"), reason="llama-cpp-python not installed")
def test_real_llama_cpp_server_behind_a_fault_proxy():
    from lmsi.models import gguf_file

    proc, url = start_llama_server(str(gguf_file("embedded:qwen2.5-coder-0.5b")))
    try:
        params = SamplingParams(n=2, temperature=0.7, max_new_tokens=24, stop=("\nQ:",), seed=1)
        clean = _sampler([url], timeout=120).generate(PROMPTS[:2], params)
        assert all(len(p) == 2 and all(isinstance(t, str) for t in p) for p in clean)
        _, proxy = start(FaultProxy, upstream=url, faults={0: 500, 1: "reset", 2: "garbage"}, count=[0])
        faulty = _sampler([proxy], timeout=120).generate(PROMPTS[:2], params)
        assert [len(p) for p in faulty] == [2, 2]
        greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=24, stop=("\nQ:",), seed=1)
        assert _sampler([url]).generate(PROMPTS[:2], greedy) == _sampler([proxy]).generate(PROMPTS[:2], greedy)
    finally:
        proc.kill()


@pytest.mark.slow
@pytest.mark.skipif(not importlib.util.find_spec("llama_cpp"), reason="llama-cpp-python not installed")
def test_two_real_llama_cpp_servers_share_work_and_a_killed_one_is_routed_around():
    from lmsi.models import gguf_file

    model = str(gguf_file("embedded:qwen2.5-coder-0.5b"))
    (pa, a), (pb, b) = start_llama_server(model), start_llama_server(model)
    try:
        params = SamplingParams(n=1, temperature=0.7, max_new_tokens=8, stop=("\nQ:",), seed=1)
        s = _sampler([a, b], timeout=120, concurrency=1)
        s.generate(PROMPTS[:4], params)
        assert all(e.served > 0 for e in s.endpoints)
        pb.kill()
        pb.wait()
        out = s.generate(PROMPTS, params)
        assert len(out) == len(PROMPTS) and all(len(p) == 1 for p in out)
    finally:
        pa.kill()
        pb.kill()
