"""Copy a finished run's report into docs/examples/NAME with the command that made it.

    .venv/bin/python scripts/publish_example.py runs/three three-rounds "lmsi run -r runs/three --rounds 3 loop.stop=false"

Copies report.md, report.png and the small JSON/YAML files that explain the run (no model
weights, no samples: those stay in the run directory)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

KEEP = ["report.md", "report.png", "config.yaml", "manifest.json", "loop.json", "contamination.json", "exemplars.json"]


def main(run_dir: str, name: str, command: str) -> None:
    src, dst = Path(run_dir), Path(__file__).resolve().parents[1] / "docs" / "examples" / name
    dst.mkdir(parents=True, exist_ok=True)
    for f in KEEP:
        if (src / f).exists():
            shutil.copy2(src / f, dst / f)
    report = (dst / "report.md").read_text()
    (dst / "report.md").write_text(f"Reproduce: `{command}` (then `lmsi report -r {run_dir}`).\n\n{report}")
    print(f"published {src} -> {dst}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
