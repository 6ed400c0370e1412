"""The Sampler protocol every stage talks to, and the parameters it takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1  # completions per prompt
    temperature: float = 0.7  # 0 means greedy
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int = 0
    # first of the n completions per prompt is greedy: greedy CoT and maj@m share one call
    greedy_first: bool = False
    # prompt i's paths drawn from seeds[i] alone, whatever else shares the call (early stopping's
    # waves batch many questions); backends that honour it say so with `prompt_seeds = True`
    seeds: tuple[int, ...] | None = None


class Sampler(Protocol):
    name: str

    def generate(self, prompts: list[str], params: SamplingParams, progress=None) -> list[list[str]]:
        """Return `params.n` completions for each prompt, each cut before its first stop string.

        `progress`, if given, is called with the number of prompts finished so far.

        Greedy rows (temperature 0; the first path under greedy_first) should not depend on
        the other prompts or paths of the call, so that a config changing the batch (modes,
        sc_m, batch_rows, a resumed chunk) cannot move a greedy score. hf guarantees it on a
        device with deterministic kernels (backends/hf.py), fake trivially. llamacpp does not:
        its kernels are not batch-invariant. vllm and openai servers batch requests as they
        please: no guarantee; compare their greedy scores only between runs set up alike.
        """
        ...


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """Cut `text` before the earliest stop string; report whether one was found."""
    best = len(text)
    for s in stop:
        i = text.find(s)
        if i != -1 and i < best:
            best = i
    return text[:best], best < len(text)


def pick_tokens(logits, greedy, params: SamplingParams, gen):
    """Sample each row at params.temperature (nucleus top_p), except rows flagged greedy (argmax).
    Shared by the torch-side backends so they draw from one distribution with one seed. `gen` is
    one generator for the batch, or one per row (per-prompt seeds): a row then draws one uniform
    number from its own generator and takes the token where the cumulative probability passes it."""
    import torch

    top = logits.argmax(-1)
    if params.temperature <= 0 or bool(greedy.all()):
        return top
    probs = torch.softmax(logits / params.temperature, -1)
    if params.top_p < 1.0:
        sp, si = probs.sort(-1, descending=True)
        sp = sp * (sp.cumsum(-1) - sp < params.top_p)
        probs = torch.zeros_like(probs).scatter(-1, si, sp)
    if isinstance(gen, list):
        cdf = probs.float().cumsum(-1)
        u = torch.cat([torch.rand(1, generator=g) for g in gen]).to(cdf.device)[:, None] * cdf[:, -1:]
        picked = torch.searchsorted(cdf, u).squeeze(-1).clamp(max=probs.shape[-1] - 1)
    else:
        picked = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
    return torch.where(greedy, top, picked)


def row_generators(seeds, n: int, device="cpu") -> list:
    """One torch generator per row of a batch of len(seeds) prompts x n paths (prompt-major)."""
    import torch

    return [torch.Generator(device=device).manual_seed(s * 1009 + k) for s in seeds for k in range(n)]
