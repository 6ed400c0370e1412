"""Sampler backends, looked up by name; heavy imports happen only when one is picked."""

from __future__ import annotations

import importlib

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
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(model, **kwargs)


__all__ = ["BACKENDS", "Sampler", "SamplingParams", "cut_at_stop", "get_sampler"]
