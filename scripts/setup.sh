#!/usr/bin/env bash
# Create .venv and install lmsi with the embedded model (and test tools with `setup.sh test`).
# torch is pinned to 2.13.0 in pyproject: its CPU wheel is what pip finds on these machines;
# an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="embedded"
[[ "${1:-}" == "test" ]] && extras="embedded,test"
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[${extras}]"
