"""vLLM sampler for GPU machines (`pip install 'lmsi[vllm]'`; needs CUDA).

vLLM already does what the m-paths workload needs: prefix caching shares the few-shot prompt
across questions and paths, continuous batching drops finished paths, and `n` samples per
request share their prompt's KV blocks. This class only maps lmsi's SamplingParams onto it.
Each prompt gets its own seed (run seed + prompt index), so a prompt's paths do not depend on
what else is in the batch.
"""

from __future__ import annotations


class VLLMSampler:
    name = "vllm"

    def __init__(self, model: str, dtype: str = "auto", seed: int = 0, gpu_memory_utilization: float = 0.5,
                 max_model_len: int | None = None, trust_remote_code: bool = False, **_):
        try:
            import vllm
        except ImportError:
            raise RuntimeError("the vllm backend needs vLLM on a CUDA machine: pip install vllm") from None
        self.vllm = vllm
        # bf16 unless told: "auto" in lmsi means "fastest on this CPU", which means nothing to vLLM
        self.llm = vllm.LLM(model=str(model), dtype="bfloat16" if dtype == "auto" else dtype, seed=seed,
                            enable_prefix_caching=True, gpu_memory_utilization=gpu_memory_utilization,
                            max_model_len=max_model_len, trust_remote_code=trust_remote_code)

    def requests(self, prompts: list[str], params) -> tuple[list[str], list]:
        """One request per prompt; with greedy_first, a greedy request for path 0 and a sampled one
        for the other n-1 paths (vLLM's n shares one temperature)."""
        sp = self.vllm.SamplingParams
        common = dict(top_p=params.top_p, max_tokens=params.max_new_tokens, stop=list(params.stop) or None)
        texts, kinds = [], []
        for i, p in enumerate(prompts):
            seed = params.seed * 1_000_003 + i
            if params.temperature <= 0:  # greedy paths are identical: decode one, copy it n times
                texts.append(p)
                kinds.append(sp(n=1, temperature=0.0, seed=seed, **common))
                continue
            if params.greedy_first:
                texts.append(p)
                kinds.append(sp(n=1, temperature=0.0, seed=seed, **common))
            if params.n - params.greedy_first > 0:
                texts.append(p)
                kinds.append(sp(n=params.n - params.greedy_first, temperature=params.temperature, seed=seed, **common))
        return texts, kinds

    def generate(self, prompts: list[str], params, progress=None) -> list[list[str]]:
        texts, kinds = self.requests(prompts, params)
        outs = self.llm.generate(texts, kinds, use_tqdm=False)
        paths = [[c.text for c in o.outputs] for o in outs]
        if params.temperature <= 0:
            paths = [p * params.n for p in paths]
        elif params.greedy_first:
            merged, it = [], iter(paths)
            for _ in prompts:
                first = next(it)
                merged.append(first + (next(it) if params.n > 1 else []))
            paths = merged
        if progress:
            progress(len(prompts))
        return paths
