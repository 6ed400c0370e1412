"""Write docs/bad-input.md: each bad input from tests/bad_input_cases.py and the message
`lmsi run` actually prints for it (run: .venv/bin/python scripts/bad_input_table.py)."""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from bad_input_cases import CASES, isolated  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from lmsi.cli import app  # noqa: E402
from lmsi.pipeline import Pipeline  # noqa: E402


def _said(r, t: Path, keep) -> str:
    msg = " ".join(line.strip() for line in r.output.splitlines() if keep(line))
    return " ".join(msg.replace(str(t) + "/", "").replace(str(ROOT) + "/", "").split()).replace("|", "\\|")


def scenarios() -> list[tuple[str, str, str]]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        ev = ["eval", "--task", "arith", "--limit", "2", "-r", str(t / "run")]
        first = CliRunner().invoke(app, [*ev, "--model", "/nope/typo.gguf"])
        again = CliRunner().invoke(app, [*ev, "backend=fake"])
        said = _said(first, t, lambda x: "error:" in x) + " / then: " + _said(again, t, lambda x: "stage output" in x)
        out.append(("a failed start, rerun with the typo fixed", f"{first.exit_code}, then {again.exit_code}", said))
        with isolated(), mock.patch.object(Pipeline, "_eval_only", _shape_bug):
            r = CliRunner().invoke(
                app, ["eval", "--task", "arith", "--limit", "2", "-r", str(t / "bug"), "backend=fake"]
            )
        msg = _said(r, t, lambda x: "error" in x or "bug" in x or "traceback:" in x or "Error" in x)
        out.append(
            (
                "an internal error (a bug in lmsi)",
                str(r.exit_code),
                re.sub(r"error-[0-9-]+\.log", "error-TIME.log", msg),
            )
        )
    return out


def _shape_bug(self):
    raise ValueError("mat1 and mat2 shapes cannot be multiplied (4x8 and 9x8)")


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
    lines += [
        "",
        "## Not bad input",
        "",
        "A start that failed on bad input locks nothing: the same run directory takes the fixed config",
        "(`lmsi eval --task arith -r <dir> ...`, twice). Any exception that is not one of lmsi's own",
        "input errors is a bug and is shown as one: exit 1, the last frames, the whole traceback in a log.",
        "",
        "| case | exit | what lmsi printed |",
        "|---|---|---|",
        *[f"| {name} | {code} | `{msg[:400]}` |" for name, code, msg in scenarios()],
    ]
    out = ROOT / "docs" / "bad-input.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
