"""A run that failed before any stage output takes a fixed config (issue: a typo must not lock a
run directory), and an internal error is shown as a bug (exit 1, traceback kept), not as bad input."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from lmsi.cli import app

runner = CliRunner()
SMALL = ["data.limit=4", "eval.limit=2", "sample.m=2"]
FAST = ["backend=fake", *SMALL]


def test_a_failed_start_does_not_lock_the_run_dir(tmp_path, tiny_model_dir):
    rd = tmp_path / "x"
    r = runner.invoke(app, ["run", "-r", str(rd), "model=typo.gguf", *SMALL])
    assert r.exit_code == 2 and "not found" in r.output and (rd / "config.yaml").exists()
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"question": "2+2?", "answer": 4}\n{oops\n')
    r = runner.invoke(app, ["run", "-r", str(rd), f"data.task=file:{bad}", *FAST])
    assert r.exit_code == 2 and "q.jsonl:2" in r.output
    # the typo fixed: the same run dir takes the new config without --force, and says so in one line
    tiny = [f"model={tiny_model_dir}", "sample.max_new_tokens=8", "train.max_length=64"]
    r = runner.invoke(app, ["run", "-r", str(rd), "build.threshold=0.0", *tiny, *FAST])
    assert r.exit_code == 0, r.output
    assert "no stage output yet" in r.output
    saved = (rd / "config.yaml").read_text()
    assert "typo.gguf" not in saved and "threshold: 0.0" in saved
    # once a stage has written output, a different config is refused as before
    r = runner.invoke(app, ["run", "-r", str(rd), "build.threshold=0.5", *tiny, *FAST])
    assert r.exit_code == 2 and "different config" in r.output


def test_partial_stage_output_locks_the_run_dir(tmp_path):
    rd = tmp_path / "y"
    r = runner.invoke(app, ["run", "-r", str(rd), "model=typo.gguf", *SMALL])
    assert r.exit_code == 2
    (rd / "eval_base").mkdir(parents=True, exist_ok=True)
    (rd / "eval_base" / "cot.partial.jsonl").write_text(json.dumps({"id": "a", "paths": ["x"]}) + "\n")
    r = runner.invoke(app, ["run", "-r", str(rd), *FAST])
    assert r.exit_code == 2 and "different config" in r.output


def test_an_internal_error_is_a_bug_not_bad_input(tmp_path, monkeypatch):
    from lmsi.pipeline import Pipeline

    def broken(self, k):
        raise ValueError("mat1 and mat2 shapes cannot be multiplied (4x8 and 9x8)")  # a torch-style bug

    monkeypatch.setattr(Pipeline, "_vote", broken)
    monkeypatch.delenv("LMSI_DEBUG", raising=False)
    rd = tmp_path / "z"
    r = runner.invoke(app, ["run", "-r", str(rd), *FAST])
    assert r.exit_code == 1, r.output
    assert "bug" in r.output and "not bad input" in r.output
    assert "shapes cannot be multiplied" in r.output and "in broken" in r.output  # the last frames are shown
    logs = list(rd.glob("error-*.log"))
    assert len(logs) == 1 and "Traceback" in logs[0].read_text() and "in broken" in logs[0].read_text()
    assert str(logs[0].name) in r.output  # the message points at the whole traceback


def test_a_resume_clears_writes_torn_by_a_kill(tmp_path):
    """atomic_write_text writes <name>.<random>.tmp and renames it; a kill between the two leaves
    the temp file behind, and the next start of the run removes it."""
    rd = tmp_path / "t"
    assert runner.invoke(app, ["eval", "--task", "arith", "--limit", "2", "-r", str(rd), "backend=fake"]).exit_code == 0
    torn = [rd / "manifest.json.k2j4_x1z.tmp", rd / "eval" / "sc.jsonl.abcd1234.tmp"]
    for f in torn:
        f.write_text("half")
    keep = rd / "notes.tmp.txt"
    keep.write_text("mine")
    assert runner.invoke(app, ["eval", "--task", "arith", "--limit", "2", "-r", str(rd), "backend=fake"]).exit_code == 0
    assert not any(f.exists() for f in torn) and keep.exists()
