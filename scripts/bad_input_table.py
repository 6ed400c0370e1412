"""Write docs/bad-input.md: each bad input from tests/bad_input_cases.py and the message
`lmsi run` actually prints for it (run: .venv/bin/python scripts/bad_input_table.py)."""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from bad_input_cases import CASES, isolated  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from lmsi.cli import app  # noqa: E402


def main() -> None:
    lines = [
        "# What lmsi says to bad input",
        "",
        "Each row was run as `lmsi run -r <dir> backend=fake <input>` by `scripts/bad_input_table.py`; the",
        "message is what lmsi printed (temporary paths shortened to the file name). Every case exits",
        "with code 2, prints no traceback and leaves no half-written file or finished stage behind",
        "(`tests/test_bad_input.py` checks the same cases).",
        "",
        "| bad input | exit | message |",
        "|---|---|---|",
    ]
    for name, build, _ in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            with isolated():
                r = CliRunner().invoke(
                    app, ["run", "-r", str(t / "run"), "backend=fake", "data.limit=4", "eval.limit=2", *build(t)]
                )
            msg = " ".join(line for line in r.output.splitlines() if line.startswith("error:") or "error:" in line)
            msg = " ".join(msg.replace(str(t) + "/", "").split()).replace("|", "\\|")
            msg = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", msg)  # a local test server's port
        lines.append(f"| {name} | {r.exit_code} | `{msg[:300]}` |")
    out = ROOT / "docs" / "bad-input.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
