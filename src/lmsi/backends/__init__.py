"""Sampler backends, looked up by name; heavy imports happen only when one is picked."""

from __future__ import annotations

import importlib

from ..config import ConfigError
from ..models import load_model
from .base import Sampler, SamplingParams, cut_at_stop

BACKENDS = {
    "hf": "lmsi.backends.hf:HFSampler",
    "llamacpp": "lmsi.backends.llamacpp:LlamaCppSampler",
    "openai": "lmsi.backends.openai_http:OpenAISampler",
    "vllm": "lmsi.backends.vllm:VLLMSampler",
    "fake": "lmsi.backends.fake:FakeSampler",
}


def get_sampler(name: str, model, **kwargs) -> Sampler:
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(model, **kwargs)


def from_recipe(recipe: dict, loaded=None) -> Sampler:
    """The sampler a recipe describes (`runtime.Runtime.recipe`: backend, spec and its options), in
    this process or on a remote worker. hf: `loaded` is the (model, tokenizer) if already in memory."""
    r = dict(recipe)
    backend, spec = r.pop("backend"), r.pop("spec")
    if backend == "hf":
        model, tok = loaded or load_model(spec, r.get("dtype", "auto"))
        r.pop("dtype", None)
        return get_sampler("hf", model, tokenizer=tok, **r)
    return get_sampler(backend, spec, **r)


__all__ = ["BACKENDS", "Sampler", "SamplingParams", "cut_at_stop", "from_recipe", "get_sampler"]
