"""Training draws (train.draws / --draws K): K build/train draws per round on the same samples,
each evaluated; the report and compare give their mean, spread and a paired CI over draws; the
next round samples with a draw chosen without labels."""

from __future__ import annotations

import json

from test_rounds import TINY as ROUNDS_TINY
from typer.testing import CliRunner

from lmsi.cli import app
from lmsi.rundir import RunDir
from lmsi.stats import paired_gain_over_draws, spread

runner = CliRunner()
TINY = [*ROUNDS_TINY, "loop.questions=same", "loop.stop=false"]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_paired_gain_over_draws_averages_items_first(tmp_path):
    base = _jsonl(tmp_path / "b.jsonl", [{"id": i, "correct": c} for i, c in enumerate([0, 0, 1, 1])])
    a = _jsonl(tmp_path / "a.jsonl", [{"id": i, "correct": c} for i, c in enumerate([1, 0, 1, 0])])
    b = _jsonl(tmp_path / "c.jsonl", [{"id": i, "correct": c} for i, c in enumerate([1, 1, 1, 1])])
    g = paired_gain_over_draws(base, [a, b])
    # per item: (1+1)/2-0, (0+1)/2-0, 1-1, (0+1)/2-1 -> 1, .5, 0, -.5
    assert g["delta"] == 0.25 and (g["won"], g["lost"], g["n"]) == (2, 1, 4)
    assert g["ci95"][0] <= 0.25 <= g["ci95"][1]
    # two runs with draws each (lmsi compare's column against the first): both sides averaged per item
    g = paired_gain_over_draws([base, a], [b])
    # per item: 1-(0+1)/2, 1-0, 1-1, 1-(1+0)/2 -> .5, 1, 0, .5
    assert g["delta"] == 0.5 and (g["won"], g["lost"], g["n"]) == (3, 0, 4)
    s = spread([0.6, 0.7, 0.8])
    assert round(s["mean"], 6) == 0.7 and round(s["sd"], 6) == 0.1 and (s["min"], s["max"], s["n"]) == (0.6, 0.8, 3)


def test_draws_train_evaluate_and_choose_without_labels(tiny_model_dir, tmp_path):
    rd = tmp_path / "draws"
    r = runner.invoke(app, ["run", "-r", str(rd), f"model={tiny_model_dir}", "--rounds", "2", "--draws", "2", *TINY])
    assert r.exit_code == 0, r.output
    run = RunDir(rd)
    stages = run.stages
    for k in (1, 2):
        assert run.draws(k) == [0, 1]
        assert f"round_{k:02d}/draw_1/train" in stages and f"round_{k:02d}/draw_1/eval" in stages
        sel = stages[f"round_{k:02d}/select"]
        assert sel["draw"] in (0, 1) and len(sel["agreement"]) == 2
        # the chosen draw is the one whose own paths agree most on the eval questions
        assert sel["agreement"][sel["draw"]] == max(sel["agreement"])
    # another train seed per draw: different rows order or LoRA init, so different weights
    w0 = (rd / "round_01/model/model.safetensors").read_bytes()
    w1 = (rd / "round_01/draw_1/model/model.safetensors").read_bytes()
    assert w0 != w1
    report = (rd / "report.md").read_text()
    assert "## Training draws" in report and " ± " in report and "averaged over draws" in report
    assert "| 1 | greedy CoT after vs self-consistency before | 2 |" in report  # the paper's transfer, over draws
    # round 2 sampled with round 1's chosen draw: the log names it
    assert f"round 1: draw {stages['round_01/select']['draw']} goes on" in r.output
    single = tmp_path / "single"
    r = runner.invoke(app, ["run", "-r", str(single), f"model={tiny_model_dir}", *TINY])
    assert r.exit_code == 0, r.output
    assert not list(single.glob("round_*/draw_*")) and "round_01/select" not in RunDir(single).stages
    assert "## Training draws" not in (single / "report.md").read_text()
    r = runner.invoke(app, ["compare", str(single), str(rd), "--round", "1"])
    assert r.exit_code == 0, r.output
    assert "rank by the draws' mean greedy CoT" in r.output and "± " in r.output
    assert "paired, each item averaged over each run's draws" in r.output
