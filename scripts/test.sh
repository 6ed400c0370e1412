#!/usr/bin/env bash
# Set up and run the whole test suite, including the real embedded model end to end.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh test || exit 1
.venv/bin/python -m pytest -q "$@"
code=$?
# pytest exit 5 = "no tests collected": a broken suite, not a pass
if [[ $code -eq 5 ]]; then echo "pytest collected no tests" >&2; exit 1; fi
exit $code
