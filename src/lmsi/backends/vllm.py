"""vLLM sampler for GPU machines (`pip install 'lmsi[vllm]'`; needs CUDA).

vLLM already does what the m-paths workload needs: prefix caching shares the few-shot prompt
across questions and paths, continuous batching drops finished paths, and `n` samples per
request share their prompt's KV blocks. This class only maps lmsi's SamplingParams onto it.
Each prompt gets its own seed (run seed + prompt index), so a prompt's paths do not depend on
what else is in the batch.
"""

from __future__ import annotations

from ..config import ConfigError
from ..models import end_token_ids


class VLLMSampler:
    name = "vllm"
    prompt_seeds = True  # SamplingParams.seeds: each prompt its own request seed

    def __init__(
        self,
        model: str,
        dtype: str = "auto",
        seed: int = 0,
        gpu_memory_utilization: float = 0.5,
        max_model_len: int | None = None,
        trust_remote_code: bool = False,
        **_,
    ):
        try:
            import vllm
        except ImportError:
            raise ConfigError("the vllm backend needs vLLM on a CUDA machine: pip install vllm") from None
        self.vllm = vllm
        # bf16 unless told: "auto" in lmsi means "fastest on this CPU", which means nothing to vLLM
        self.llm = vllm.LLM(
            model=str(model),
            dtype="bfloat16" if dtype == "auto" else dtype,
            seed=seed,
            enable_prefix_caching=True,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            trust_remote_code=trust_remote_code,
        )
        self.end_ids = sorted(end_token_ids(self.llm.get_tokenizer()))
        self.cpu = _cpu_build(vllm)

    def requests(self, prompts: list[str], params) -> tuple[list[int], list[str], list]:
        """Requests as (owning prompt index, prompt, vLLM params). A greedy path is its own n=1
        request (vLLM's n shares one temperature, and greedy paths are identical anyway); the
        sampled paths of a prompt are one request with n = the rest."""
        sp = self.vllm.SamplingParams
        common = dict(top_p=params.top_p, max_tokens=params.max_new_tokens, stop=list(params.stop) or None)
        common["stop_token_ids"] = self.end_ids  # models.end_token_ids: vLLM stops at EOS only
        greedy = params.temperature <= 0 or params.greedy_first
        sampled = 0 if params.temperature <= 0 else params.n - params.greedy_first
        if sampled and self.cpu:
            raise ConfigError(
                'vLLM\'s CPU build refuses per-request seeds ("CPU Generator does not use offset"), '
                "which resumable sampling needs: on a CPU sample with backend=hf or backend=llamacpp"
            )
        owners, texts, kinds = [], [], []
        for i, p in enumerate(prompts):
            seed = params.seeds[i] * 1_000_003 if params.seeds else params.seed * 1_000_003 + i
            for n, temperature in ((int(greedy), 0.0), (sampled, params.temperature)):
                if n:
                    owners.append(i)
                    texts.append(p)
                    kinds.append(sp(n=n, temperature=temperature, seed=seed, **common))
        return owners, texts, kinds

    def generate(self, prompts: list[str], params, progress=None) -> list[list[str]]:
        owners, texts, kinds = self.requests(prompts, params)
        paths: list[list[str]] = [[] for _ in prompts]
        for i, o in zip(owners, self.llm.generate(texts, kinds, use_tqdm=False)):
            paths[i] += [c.text for c in o.outputs]
        if params.temperature <= 0:
            paths = [p * params.n for p in paths]
        if progress:
            progress(len(prompts))
        return paths


def _cpu_build(vllm) -> bool:
    if not hasattr(vllm, "__path__"):  # a stand-in module in tests
        return False
    from vllm.platforms import current_platform

    return current_platform.is_cpu()
