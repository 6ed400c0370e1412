"""`lmsi` command line: parses arguments and prints; the work happens in the modules it calls.

lmsi run                                  # the default job (embedded model, arith task)
lmsi run --config configs/default.yaml sample.m=8   # YAML plus dotted overrides
lmsi sample|vote|build|train|eval|report --run-dir runs/default
lmsi compare runs/a runs/b --out compare.md   # finished runs side by side
"""

from __future__ import annotations

from . import info, run, studies  # noqa: F401  (each module registers its commands on `app`)
from .app import app, open_pipeline

_pipeline = open_pipeline  # the name tests and scripts have used


def main():
    app()


__all__ = ["app", "main", "open_pipeline"]
