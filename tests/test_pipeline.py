"""End-to-end through the CLI with a tiny random model: every stage, resume, bad input."""

import json

from typer.testing import CliRunner

from lmsi.cli import app

runner = CliRunner()
SMALL = [
    "data.limit=4",
    "sample.m=3",
    "sample.max_new_tokens=8",
    "eval.limit=3",
    "eval.sc_m=2",
    "train.batch_size=2",
    "build.threshold=0.0",
]


def test_run_all_stages_then_resume(tiny_model_dir, tmp_path):
    # fake sampler (a random tiny model never states an answer) + real LoRA training of the tiny model
    rd = tmp_path / "run"
    args = ["run", "--run-dir", str(rd), f"model={tiny_model_dir}", "backend=fake", *SMALL]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "greedy CoT" in r.stdout
    for f in [
        "config.yaml",
        "manifest.json",
        "report.md",
        "report.png",
        "eval_base/summary.json",
        "round_01/samples.jsonl",
        "round_01/votes.jsonl",
        "round_01/train.jsonl",
        "round_01/adapter/adapter_config.json",
        "round_01/model/config.json",
        "round_01/train_log.jsonl",
        "round_01/eval/sc.jsonl",
    ]:
        assert (rd / f).exists(), f
    samples = [json.loads(l) for l in (rd / "round_01/samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4 and all(len(s["completions"]) == 3 for s in samples)
    manifest = json.loads((rd / "manifest.json").read_text())
    assert set(manifest["stages"]) == {
        "eval_base",
        "round_01/sample",
        "round_01/vote",
        "round_01/build",
        "round_01/train",
        "round_01/eval",
    }
    before = (rd / "round_01/samples.jsonl").read_bytes()
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "[skip] round_01/sample" in r.output
    assert (rd / "round_01/samples.jsonl").read_bytes() == before
    # resuming with a different config is refused, naming the key
    r = runner.invoke(app, [*args, "sample.m=5"])
    assert r.exit_code == 2 and "sample.m: 3 -> 5" in r.output


def test_stage_subcommands_and_order(tiny_model_dir, tmp_path):
    rd = tmp_path / "run2"
    base = ["--run-dir", str(rd), f"model={tiny_model_dir}", *SMALL]
    r = runner.invoke(app, ["vote", *base])
    assert r.exit_code == 2 and "needs stage 'sample'" in r.output
    for stage in ["sample", "vote", "build"]:
        r = runner.invoke(app, [stage, *base])
        assert r.exit_code == 0, r.output
    assert (rd / "round_01/train.jsonl").exists()


def test_bad_inputs_give_one_line(tmp_path):
    r = runner.invoke(app, ["run", "--run-dir", str(tmp_path / "x"), "sample.m=0"])
    assert r.exit_code == 2 and "sample.m" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["run", "--run-dir", str(tmp_path / "y"), "model=/nope/model.gguf"])
    assert r.exit_code == 2 and "not found" in r.output
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"question": "ok"}\n{oops\n')
    r = runner.invoke(app, ["run", "--run-dir", str(tmp_path / "z"), f"data.task=file:{bad}", "backend=fake"])
    assert r.exit_code == 2 and "q.jsonl:2" in r.output


def test_help_lists_stages():
    r = runner.invoke(app, ["--help"])
    for cmd in ["run", "sample", "vote", "build", "train", "eval", "report", "tasks"]:
        assert cmd in r.output
    for cmd in ["sample", "vote", "build", "train", "eval", "report"]:
        assert runner.invoke(app, [cmd, "--help"]).exit_code == 0


def test_sampling_resumes_after_torn_write(tiny_model_dir, tmp_path):
    rd = tmp_path / "run3"
    base = ["--run-dir", str(rd), f"model={tiny_model_dir}", "backend=fake", *SMALL, "sample.batch_rows=3"]
    assert runner.invoke(app, ["sample", *base]).exit_code == 0
    path = rd / "round_01/samples.jsonl"
    full = path.read_text().splitlines()
    # simulate a crash: two chunks committed, a third torn mid-line, stage not marked done
    path.write_text("\n".join(full[:2]) + "\n" + full[2][:20])
    manifest = json.loads((rd / "manifest.json").read_text())
    del manifest["stages"]["round_01/sample"]
    (rd / "manifest.json").write_text(json.dumps(manifest))
    assert runner.invoke(app, ["sample", *base]).exit_code == 0
    assert path.read_text().splitlines() == full  # same seeds per chunk: identical, nothing lost or doubled
