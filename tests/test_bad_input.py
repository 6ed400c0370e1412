"""Every bad input gets one clear error (exit 2, no traceback) and leaves the run dir consistent."""

import pytest
from bad_input_cases import CASES, isolated
from typer.testing import CliRunner

from lmsi.cli import app


@pytest.mark.parametrize("name,build,needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_error(tmp_path, name, build, needle):
    rd = tmp_path / "run"
    with isolated():
        r = CliRunner().invoke(
            app, ["run", "-r", str(rd), "backend=fake", "data.limit=4", "eval.limit=2", *build(tmp_path)]
        )
    assert r.exit_code == 2, r.output
    assert needle in " ".join(r.output.split()), r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) <= 3
    # nothing half-written: no temp files, no round directories, no stage marked done
    if rd.exists():
        assert not list(rd.rglob("*.tmp")) and not list(rd.glob("round_*"))
        assert not (rd / "manifest.json").exists() or '"stages": {}' in (rd / "manifest.json").read_text()
