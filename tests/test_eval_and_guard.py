"""`lmsi eval --task` on its own, resumable evaluation, and the contamination guard."""

import json

import pytest
from typer.testing import CliRunner

from lmsi.cli import app
from lmsi.tasks import Example, get_task
from lmsi.tasks.overlap import find_overlap

runner = CliRunner()


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_any_task_alone_writes_per_item_rows(tmp_path):
    rd = tmp_path / "ev"
    r = runner.invoke(
        app,
        [
            "eval",
            "--task",
            "arith",
            "--limit",
            "6",
            "--mode",
            "greedy-cot",
            "--mode",
            "zero-shot-cot",
            "--mode",
            "sc",
            "--run-dir",
            str(rd),
            "backend=fake",
            "eval.sc_m=3",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "arith greedy_cot" in r.stdout and "zeroshot_cot" in r.stdout
    summary = json.loads((rd / "eval/summary.json").read_text())
    assert set(summary) >= {"greedy_cot", "zeroshot_cot", "sc"}
    for mode in ("greedy_cot", "zeroshot_cot", "sc"):
        s = summary[mode]
        assert s["n"] == 6 and 0 <= s["ci95"][0] <= s["accuracy"] <= s["ci95"][1] <= 1
        rows = _jsonl(rd / f"eval/{mode}.jsonl")
        assert {"prompt", "paths", "answers", "prediction", "gold", "correct"} <= set(rows[0])
    assert all(len(r["paths"]) == 3 for r in _jsonl(rd / "eval/sc.jsonl"))
    assert "Let's think step by step." in _jsonl(rd / "eval/zeroshot_cot.jsonl")[0]["prompt"]
    assert not list((rd / "eval").glob("*.partial.jsonl"))


def test_eval_resumes_from_committed_chunks(tmp_path):
    from lmsi.backends.fake import FakeSampler
    from lmsi.config import EvalConfig
    from lmsi.evaluate import run_eval
    from lmsi.tasks import get_task

    task, examples = get_task("arith"), get_task("arith").load("test", 10)
    cfg = EvalConfig(modes=["greedy_cot", "sc"], sc_m=2)

    class Dies(FakeSampler):
        calls = 0

        def generate(self, prompts, params, progress=None):
            Dies.calls += 1
            if Dies.calls == 3:
                raise KeyboardInterrupt  # killed after two committed chunks
            return super().generate(prompts, params, progress)

    with pytest.raises(KeyboardInterrupt):
        run_eval(task, Dies(), examples, tmp_path / "a", cfg, 2, 20, 0, batch_rows=6)
    partial = _jsonl(tmp_path / "a/cot.partial.jsonl")
    assert 0 < len(partial) < 10
    with open(tmp_path / "a/cot.partial.jsonl", "a") as f:
        f.write('{"id": "torn')  # a crash mid-append
    run_eval(task, FakeSampler(), examples, tmp_path / "a", cfg, 2, 20, 0, batch_rows=6)
    run_eval(task, FakeSampler(), examples, tmp_path / "b", cfg, 2, 20, 0, batch_rows=6)  # uninterrupted
    for mode in ("greedy_cot", "sc"):
        assert (tmp_path / f"a/{mode}.jsonl").read_bytes() == (tmp_path / f"b/{mode}.jsonl").read_bytes()


def test_find_overlap_flags_near_duplicates_not_templates():
    pool = [
        Example("p1", "Ada buys 5 bags of apples with 9 apples in each bag. How many apples does Ada have now?"),
        Example("p2", "Premise: a long shared instruction text that every question carries along here."),
        Example("p3", "Premise: a long shared instruction text that every question carries along here. Other."),
        Example("p4", "Premise: a long shared instruction text that every question carries along here. More."),
    ]
    evals = [
        Example("e1", "Ben buys 5 bags of apples with 9 apples in each bag. How many apples does Ben have now?"),
        Example("e2", "Ben buys 6 bags of apples with 9 apples in each bag. How many apples does Ben have now?"),
        Example("e3", "Premise: a long shared instruction text that every question carries along here. New!"),
    ]
    found = find_overlap(pool, evals)
    assert [(f["eval_id"], f["pool_id"]) for f in found] == [("e1", "p1")]  # e2 has other numbers; e3 is template


def _file(tmp_path, name, questions):
    path = tmp_path / name
    path.write_text("".join(json.dumps({"question": q, "answer": "1"}) + "\n" for q in questions))
    return path


QS = [
    f"Question number {i}: {w} has {i} red marbles and finds {i + 3} more in the old garden shed."
    for i, w in enumerate(["Ada", "Ben", "Cy", "Di", "Ed", "Flo"])
]


def test_guard_refuses_same_split_and_near_duplicates(tmp_path):
    args = ["run", "--run-dir", str(tmp_path / "r1"), "backend=fake", "data.limit=4", "eval.limit=4"]
    r = runner.invoke(app, args + ["eval.split=train"])
    assert r.exit_code == 2 and "contamination guard" in r.output and "both split 'train'" in r.output
    pool = _file(tmp_path, "pool.jsonl", QS[:4])
    evals = _file(tmp_path, "eval.jsonl", [QS[1].replace("Ben", "Bob"), "A different question about 7 ducks?"])
    base = [
        "backend=fake",
        f"data.task=file:{pool}",
        f"eval.task=file:{evals}",
        "sample.m=2",
        "eval.sc_m=2",
        "train.adapter=lora",
    ]
    r = runner.invoke(app, ["run", "--run-dir", str(tmp_path / "r2"), *base])
    assert r.exit_code == 2 and "1 of 2 eval questions near-duplicate" in r.output, r.output
    assert not (tmp_path / "r2/round_01").exists()  # refused before any work


def test_guard_drop_removes_overlap_and_report_states_it(tmp_path):
    from lmsi.config import load_config
    from lmsi.pipeline import Pipeline
    from lmsi.report import build_report

    pool = _file(tmp_path, "pool.jsonl", QS[:4])
    evals = _file(tmp_path, "eval.jsonl", [QS[1].replace("Ben", "Bob"), "A different question about 7 ducks?"])
    cfg = load_config(
        overrides=[
            f"run_dir={tmp_path / 'r'}",
            "backend=fake",
            f"data.task=file:{pool}",
            f"eval.task=file:{evals}",
            "data.overlap=drop",
        ]
    )
    p = Pipeline(cfg, log=lambda m: None)
    assert [q.id for q in p.questions(1)] == ["pool-1", "pool-3", "pool-4"]
    guard = json.loads((tmp_path / "r/contamination.json").read_text())
    assert guard["overlapping"] == 1 and guard["dropped"] == 1 and guard["pairs"][0]["pool_id"] == "pool-2"
    build_report(p.run_dir)
    assert "1 of 2 eval questions overlap the 4 unlabeled questions" in (tmp_path / "r/report.md").read_text()


def test_signal_reports_vote_precision_and_coverage(tmp_path):
    rd = tmp_path / "sig"
    r = runner.invoke(
        app, ["signal", "--task", "arith", "--paths", "4", "--limit", "10", "-r", str(rd), "backend=fake"]
    )
    assert r.exit_code == 0, r.output
    s = json.loads((rd / "signal.json").read_text())
    assert s["n"] == 10 and s["m"] == 4 and set(s["by_k"]) == {"1", "2", "4"}
    assert s["by_k"]["4"]["pass"] >= s["by_k"]["4"]["maj"] and s["by_k"]["4"]["pass"] >= s["by_k"]["1"]["pass"]
    cov = [t["coverage"] for t in s["thresholds"]]
    assert cov == sorted(cov, reverse=True) and [t["threshold"] for t in s["thresholds"]] == [0.25, 0.5, 0.75, 1.0]
    assert "maj@4" in (rd / "signal.md").read_text()
    rows = _jsonl(rd / "eval/sc.jsonl")
    assert rows[0]["prompt"].endswith(get_task("arith").load("train", 1)[0].question + "\nA:")  # the unlabeled pool


def test_signal_stats_on_known_votes():
    from lmsi.signal import signal_stats
    from lmsi.tasks import get_task

    rows = [{"answers": ["1", "1", "2", None], "gold": "1"}, {"answers": ["3", "4", "4", "4"], "gold": "3"}]
    s = signal_stats(get_task("arith"), rows, [{"correct": True}, {"correct": False}])
    assert s["greedy"] == 0.5 and s["single_path"] == 3 / 8
    assert s["by_k"][4] == {"maj": 0.5, "pass": 1.0} and s["by_k"][1] == {"maj": 1.0, "pass": 1.0}
    th = {t["threshold"]: t for t in s["thresholds"]}
    assert th[0.75] == {"threshold": 0.75, "coverage": 0.5, "precision": 0.0}  # 3/4 votes for a wrong 4
    assert th[0.5]["coverage"] == 1.0 and th[0.5]["precision"] == 0.5


def test_weighted_vote_on_known_paths():
    """A confident but unlikely majority loses to a likely minority; abstainers keep their weight."""
    import math

    from lmsi.signal import signal_stats
    from lmsi.tasks import get_task
    from lmsi.vote import weighted_majority

    answer, share, votes = weighted_majority(
        ["4", "4", "3", None], [math.log(0.1), math.log(0.1), math.log(0.9), math.log(0.9)]
    )
    assert answer == "3" and votes == 1 and abs(share - 0.9 / 2.0) < 1e-9
    assert weighted_majority([None, None], [0.0, 0.0]) == (None, 0.0, 0)
    rows = [{"id": "a", "answers": ["3", "4", "4", "4"], "gold": "3"}]
    s = signal_stats(get_task("arith"), rows, [], {"a": [0.0, -5.0, -5.0, -5.0]})
    assert s["by_k"][4]["maj"] == 0.0 and s["weighted"]["maj"] == 1.0
    assert {t["threshold"]: t["precision"] for t in s["weighted"]["thresholds"]}[0.75] == 1.0


def test_signal_weighted_scores_each_path_once_and_resumes(tmp_path):
    rd = tmp_path / "sig"
    args = ["signal", "--task", "arith", "--paths", "4", "--limit", "5", "-r", str(rd), "backend=fake"]
    assert runner.invoke(app, args).exit_code == 0
    r = runner.invoke(app, [*args, "--weighted"])  # the same paths, scored afterwards
    assert r.exit_code == 0, r.output
    scored = _jsonl(rd / "eval/path_logprobs.jsonl")
    assert [len(x["logprobs"]) for x in scored] == [4] * 5
    assert (
        "weighted" in json.loads((rd / "signal.json").read_text())
        and "weighted: kept" in (rd / "signal.md").read_text()
    )
    assert runner.invoke(app, [*args, "--weighted"]).exit_code == 0
    assert len(_jsonl(rd / "eval/path_logprobs.jsonl")) == 5  # resumed, nothing scored twice
    out = tmp_path / "results.md"
    assert runner.invoke(app, ["results", str(rd), "--out", str(out)]).exit_code == 0
    assert "| weighted maj@m |" in out.read_text()


def test_weighted_vote_stage_takes_the_signals_scores_or_scores_each_path_once(tmp_path, monkeypatch):
    from lmsi.backends.fake import FakeSampler
    from lmsi.borrow import reuse_samples
    from lmsi.cli import _pipeline
    from lmsi.pipeline import Pipeline
    from lmsi.vote import weighted_majority

    # weights far apart, so a weighted vote differs from a plain one
    monkeypatch.setattr(FakeSampler, "score", lambda self, p, cs: [-3.0 * (i % 2) for i in range(len(cs))])
    sig = tmp_path / "sig"
    args = ["signal", "--task", "arith", "--paths", "4", "--limit", "5", "-r", str(sig), "--weighted", "backend=fake"]
    assert runner.invoke(app, args).exit_code == 0
    cfg = ["backend=fake", "data.task=arith", "data.limit=5", "sample.m=4", "eval.limit=2", "build.vote=weighted"]

    def votes_are_weighted(rd):
        lp = {r["id"]: r["logprobs"] for r in _jsonl(rd / "round_01/path_logprobs.jsonl")}
        samples = {r["id"]: r for r in _jsonl(rd / "round_01/samples.jsonl")}
        votes = _jsonl(rd / "round_01/votes.jsonl")
        return len(votes) == len(lp) == 5 and all(
            (v["answer"], v["confidence"])
            == (lambda a, c, _: (a, round(c, 4)))(*weighted_majority(samples[v["id"]]["answers"], lp[v["id"]]))
            for v in votes
        )

    reuse_samples(_pipeline(None, tmp_path / "a", cfg), sig)
    with monkeypatch.context() as m:  # the signal scored these paths: no model is loaded to vote
        m.setattr(Pipeline, "sampler", lambda *a, **k: pytest.fail("scored again"))
        assert runner.invoke(app, ["vote", "-r", str(tmp_path / "a")]).exit_code == 0
    assert votes_are_weighted(tmp_path / "a")
    b = tmp_path / "b"  # its own samples: the vote stage scores them
    assert runner.invoke(app, ["sample", "-r", str(b), *cfg]).exit_code == 0
    assert runner.invoke(app, ["vote", "-r", str(b)]).exit_code == 0 and votes_are_weighted(b)
    plain = [r["confidence"] for r in _jsonl(b / "round_01/votes.jsonl")]
    assert runner.invoke(app, ["vote", "-r", str(b), "--force", "--redo", "build.vote=majority"]).exit_code == 0
    assert [r["confidence"] for r in _jsonl(b / "round_01/votes.jsonl")] != plain  # the weights changed the shares


def test_run_trains_on_the_paths_lmsi_signal_measured(tmp_path):
    """--samples-from a signal dir: round 1 takes its sampled paths (same questions, prompt, m, T);
    a run whose questions or sampling differ is refused before anything is written."""
    from lmsi.borrow import reuse_samples
    from lmsi.cli import _pipeline
    from lmsi.config import ConfigError
    from lmsi.io import InputError

    sig = tmp_path / "sig"
    assert (
        runner.invoke(
            app, ["signal", "--task", "arith", "--paths", "4", "--limit", "6", "-r", str(sig), "backend=fake"]
        ).exit_code
        == 0
    )
    same = ["backend=fake", "data.task=arith", "data.limit=5", "sample.m=4", "eval.limit=2"]
    p = _pipeline(None, tmp_path / "run", same)
    assert reuse_samples(p, sig) == ["round_01/sample"]
    rows, measured = (
        _jsonl(tmp_path / "run/round_01/samples.jsonl"),
        {r["id"]: r for r in _jsonl(sig / "eval/sc.jsonl")},
    )
    assert len(rows) == 5 and all(r["completions"] == measured[r["id"]]["paths"] for r in rows)
    assert [r["answers"] for r in rows] == [measured[r["id"]]["answers"] for r in rows]
    assert p.manifest.data["stages"]["round_01/sample"]["reused_from"] == str(sig)
    assert runner.invoke(app, ["vote", "-r", str(tmp_path / "run")]).exit_code == 0  # the next stage takes them
    for bad, why in (
        (["data.limit=7"], "not measured"),
        (["sample.m=3"], "m: 4 there, 3 here"),
        (["sample.temperature=1.0"], "temperature"),
    ):
        p = _pipeline(None, tmp_path / bad[0], [*same, *bad])
        with pytest.raises((ConfigError, InputError), match=why):
            reuse_samples(p, sig)
        assert not (tmp_path / bad[0] / "round_01").exists()
