"""Multi-round iteration, the label-free stop rule, self-generated questions and exemplars,
and distillation, at tiny sizes (fake sampler + real LoRA training of a tiny random model)."""

import json
from pathlib import Path

from typer.testing import CliRunner

from lmsi.cli import app
from lmsi.config import load_config
from lmsi.pipeline import Pipeline

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "data.limit=3",
    "sample.m=3",
    "sample.max_new_tokens=8",
    "eval.limit=3",
    "eval.sc_m=2",
    "train.batch_size=2",
    "build.threshold=0.0",
    "backend=fake",
]


def _manifest(rd):
    return json.loads((rd / "manifest.json").read_text())["stages"]


def test_three_rounds_on_fresh_questions(tiny_model_dir, tmp_path):
    rd = tmp_path / "r"
    r = runner.invoke(app, ["run", "--rounds", "3", "-r", str(rd), f"model={tiny_model_dir}", "loop.stop=false", *TINY])
    assert r.exit_code == 0, r.output
    stages = _manifest(rd)
    for k in (1, 2, 3):
        assert f"round_{k:02d}/eval" in stages and (rd / f"round_{k:02d}/model/config.json").exists()
        assert "agreement" in stages[f"round_{k:02d}/vote"]
    ids = [
        {json.loads(l)["id"] for l in (rd / f"round_{k:02d}/samples.jsonl").read_text().splitlines()} for k in (1, 2, 3)
    ]
    assert all(len(s) == 3 for s in ids) and not (ids[0] & ids[1] or ids[1] & ids[2] or ids[0] & ids[2])
    report = (rd / "report.md").read_text()
    assert "## Rounds" in report and "| 3 |" in report and "after 3 round(s)" in report
    assert json.loads((rd / "loop.json").read_text())["rounds_done"] == 3
    # the text-free archive rebuilds the same report, holding no question, prompt, path or weight
    arc = tmp_path / "docs" / "r"
    r = runner.invoke(app, ["archive", str(rd), str(arc)])
    assert r.exit_code == 0, r.output
    questions = [json.loads(l)["question"] for l in (rd / "round_01/samples.jsonl").read_text().splitlines()]
    stored = "".join(p.read_text() for p in arc.rglob("*") if p.suffix in (".json", ".jsonl", ".txt", ".yaml"))
    assert questions and not any(q in stored for q in questions) and '"gold"' not in stored
    assert not list(arc.rglob("*.safetensors")) and not (arc / "round_01/model").exists()
    assert (arc / "config.yaml").read_text() == (rd / "config.yaml").read_text()  # configs are ours, kept whole
    (arc / "report.md").unlink()
    assert runner.invoke(app, ["report", "-r", str(arc)]).exit_code == 0
    assert (arc / "report.md").read_text() == report
    bad = runner.invoke(app, ["archive", str(tmp_path / "nothing"), str(arc)])
    assert bad.exit_code == 2 and "not an lmsi run" in bad.output
    # a stage of round 2 cannot run before round 1 trained, in a new run dir
    r = runner.invoke(app, ["sample", "-k", "2", "-r", str(tmp_path / "r2"), f"model={tiny_model_dir}", *TINY])
    assert r.exit_code == 2 and "finish round 1 first" in r.output


def test_stop_rule_uses_only_agreement(tmp_path):
    from lmsi.io import write_jsonl

    cfg = load_config(overrides=[f"run_dir={tmp_path}", "loop.rounds=3", "loop.min_gain=0.05", *TINY])
    p = Pipeline(cfg, log=lambda m: None)

    def sc(d, shares):  # sc rows whose majority holds `share` of 4 paths; gold never read
        write_jsonl(
            tmp_path / d / "sc.jsonl",
            [{"answers": ["1"] * int(4 * x) + ["2", "3", "4", "5"][: 4 - int(4 * x)], "gold": "999"} for x in shares],
        )

    sc("eval_base", [0.5, 0.5])
    sc("round_01/eval", [0.5, 0.75])  # +0.125
    assert p.stop_reason(1) is None
    sc("round_02/eval", [0.5, 0.75])  # +0
    assert "keep round 1's model" in p.stop_reason(2)
    p.cfg.loop.min_gain = 0.0
    assert p.stop_reason(2) is None  # equal agreement is not a drop once min_gain is 0
    p.cfg.loop.stop = False
    sc("round_02/eval", [0.25, 0.25])
    assert p.stop_reason(2) is None


def test_weak_vote_stops_before_training(tiny_model_dir, tmp_path):
    rd = tmp_path / "w"
    args = ["run", "-r", str(rd), f"model={tiny_model_dir}", *TINY]
    r = runner.invoke(app, [*args, "loop.min_agreement=1.0"])  # only a unanimous vote would pass
    assert r.exit_code == 0, r.output
    vote = _manifest(rd)["round_01/vote"]
    assert vote["agreement"] < 1.0 and 0 <= vote["stability"] <= 1 and vote["distinct"] >= 1 and vote["weak"]
    assert vote["chance"] == vote["floor"]  # numbers: no chance level above the floor 1/m
    assert "weak vote" in r.output and not (rd / "round_01" / "train.jsonl").exists()
    loop = json.loads((rd / "loop.json").read_text())
    assert loop["rounds_done"] == 0 and "not trained" in loop["stopped"]
    # a run whose vote stage was recorded before votes had signs resumes to the same verdict
    manifest = json.loads((rd / "manifest.json").read_text())
    manifest["stages"]["round_01/vote"] = {k: vote[k] for k in ("seconds", "finished", "confident")}
    (rd / "manifest.json").write_text(json.dumps(manifest))
    r = runner.invoke(app, [*args, "loop.min_agreement=1.0"])
    assert r.exit_code == 0, r.output
    assert json.loads((rd / "loop.json").read_text()) == loop
    # the same vote, trained on anyway: a warning, then build and train
    r = runner.invoke(app, [*args, "loop.min_agreement=1.0", "loop.stop=false", "--force"])
    assert r.exit_code == 0, r.output
    assert "[warn] round 1: weak vote" in r.output and "round_01/train" in _manifest(rd)
    # a vote above the bar trains with no warning
    r = runner.invoke(app, [*args[:2], str(tmp_path / "ok"), *args[3:], "loop.min_agreement=0.0"])
    assert r.exit_code == 0 and "weak vote" not in r.output and "round_01/train" in _manifest(tmp_path / "ok")


def test_self_generated_questions_and_exemplars(tiny_model_dir, tmp_path):
    rd = tmp_path / "s"
    r = runner.invoke(
        app,
        [
            "run",
            "--questions",
            "self",
            "--exemplars",
            "self",
            "-r",
            str(rd),
            f"model={tiny_model_dir}",
            "selfgen.generate=12",
            "selfgen.seed_questions=4",
            "selfgen.exemplar_pool=4",
            *TINY,
        ],
    )
    assert r.exit_code == 0, r.output
    stages = _manifest(rd)
    assert stages["questions"]["generated"] == 12 and 0 < stages["questions"]["kept"] <= 12
    qs = [json.loads(l) for l in (rd / "questions_self.jsonl").read_text().splitlines()]
    assert all(q["id"].startswith("self-") and q["answer"] is None for q in qs)
    samples = [json.loads(l) for l in (rd / "round_01/samples.jsonl").read_text().splitlines()]
    assert {s["id"] for s in samples} <= {q["id"] for q in qs}
    exemplars = json.loads((rd / "exemplars.json").read_text())
    assert len(exemplars) == 3 and all(e["reasoning"] and e["answer"] for e in exemplars)
    assert exemplars[0]["question"] in samples[0]["prompt"]  # the loop uses the model's own exemplars
    assert "self-generated questions" in (rd / "report.md").read_text()


def test_self_generated_questions_are_filtered(tmp_path):
    from lmsi.selfgen import keep_question

    assert keep_question("How many?", True) == "too short"
    assert keep_question("A shop sells many pens to many people each day, how many pens", True) == "no question mark"
    assert keep_question("A shop sells many pens to many people each day. How many pens are sold?", True) == "no number"
    assert keep_question("A shop sells 4 pens to many people each day. How many pens are sold?", True) is None


def test_distillation_trains_the_student(tiny_model_dir, tmp_path):
    import shutil

    student = tmp_path / "student"
    shutil.copytree(tiny_model_dir, student)
    rd = tmp_path / "d"
    r = runner.invoke(app, ["run", "--student", str(student), "-r", str(rd), f"model={tiny_model_dir}", *TINY])
    assert r.exit_code == 0, r.output
    assert (rd / "eval_student/summary.json").exists() and (rd / "round_01/model/config.json").exists()
    assert "Distillation" in (rd / "report.md").read_text()
    r = runner.invoke(app, ["run", "--student", str(student), "--rounds", "2", "-r", str(tmp_path / "d2"), *TINY])
    assert r.exit_code == 2 and "distillation runs one round" in r.output


def test_sweep_shares_one_sampling_pass(tiny_model_dir, tmp_path):
    sd = tmp_path / "sw"
    small = [a for a in TINY if not a.startswith(("sample.m", "build.threshold"))]
    r = runner.invoke(
        app, ["sweep", "sample.m=2,3", "build.threshold=0.0,0.9", "-r", str(sd), f"model={tiny_model_dir}", *small]
    )
    assert r.exit_code == 0, r.output
    points = sorted(p.name for p in sd.iterdir() if p.is_dir())
    assert points == ["m=2_threshold=0.0", "m=2_threshold=0.9", "m=3_threshold=0.0", "m=3_threshold=0.9"]
    big = [json.loads(l) for l in (sd / "m=3_threshold=0.0/round_01/samples.jsonl").read_text().splitlines()]
    small_ = [json.loads(l) for l in (sd / "m=2_threshold=0.9/round_01/samples.jsonl").read_text().splitlines()]
    assert [s["completions"] for s in small_] == [b["completions"][:2] for b in big]
    shared = _manifest(sd / "m=2_threshold=0.9")
    assert "shared_from" in shared["round_01/sample"] and "shared_from" in shared["eval_base"]
    assert "shared_from" not in _manifest(sd / "m=3_threshold=0.0")["round_01/sample"]
    table = (sd / "sweep.md").read_text()
    assert table.count("\n| ") >= 5 and (sd / "sweep.png").exists()
    r = runner.invoke(app, ["sweep", "sample.m=4", "-r", str(tmp_path / "none")])
    assert r.exit_code == 2 and "nothing to sweep" in r.output


def test_generated_questions_are_deduplicated_against_eval_and_each_other():
    from lmsi.backends import SamplingParams
    from lmsi.selfgen import generate_questions
    from lmsi.tasks import Example, get_task

    eval_q = Example("e1", "A farm has 12 cows and buys 7 more cows at the market. How many cows does the farm have?")

    class Writes:  # a sampler whose "new" questions include an eval question and a repeat
        def generate(self, prompts, params: SamplingParams, progress=None):
            pool = [
                " " + eval_q.question,
                " Tom has 3 red cars and 5 blue cars in his big garage. How many cars?",
                " Tom has 3 red cars and 5 blue cars in his big garage. How many cars?",
                " Too short?",
            ]
            return [pool[: params.n] for _ in prompts]

    seeds = [Example("s1", "Mia reads 4 pages each day for 6 days. How many pages does she read?")]
    kept, stats = generate_questions(
        get_task("arith"), Writes(), seeds, [eval_q], n=4, per_prompt=1, temperature=1.0, seed=0
    )
    assert [q.question for q in kept] == ["Tom has 3 red cars and 5 blue cars in his big garage. How many cars?"]
    assert stats["rejected"] == {"near-duplicate of an eval question": 1, "duplicate": 1, "too short": 1}


def test_report_pairs_items_and_checks_the_papers_transfer(tmp_path):
    """Paired per-item Δ, and greedy-after against self-consistency-before on the same items."""
    from lmsi.io import write_jsonl
    from lmsi.report import paired_section

    def verdicts(d, mode, correct):
        d.mkdir(parents=True, exist_ok=True)
        write_jsonl(d / f"{mode}.jsonl", [{"id": f"q{i}", "correct": c} for i, c in enumerate(correct)])

    base, last = tmp_path / "eval_base", tmp_path / "round_01/eval"
    verdicts(base, "greedy_cot", [1, 0, 0, 0])
    verdicts(base, "sc", [1, 1, 0, 0])
    verdicts(last, "greedy_cot", [1, 1, 1, 0])
    verdicts(last, "sc", [0, 1, 1, 0])
    text = "\n".join(paired_section(base, [(1, last)], ["greedy_cot", "sc"]))
    assert "| greedy CoT: after vs before | +50.0 [" in text and "2 won, 0 lost of 4" in text
    assert "| self-consistency maj@m: after vs before | +0.0 [" in text and "1 won, 1 lost of 4" in text
    assert "| greedy CoT after vs self-consistency before | +25.0 [" in text and "1 won, 0 lost of 4" in text
    # several rounds: one block each, named by round
    second = tmp_path / "round_02/eval"
    verdicts(second, "greedy_cot", [1, 1, 1, 1])
    verdicts(second, "sc", [1, 1, 1, 1])
    text = "\n".join(paired_section(base, [(1, last), (2, second)], ["greedy_cot", "sc"]))
    assert "| round 1: greedy CoT: after vs before | +50.0 [" in text
    assert "| round 2: greedy CoT: after vs before | +75.0 [" in text and "3 won, 0 lost of 4" in text
    assert "| round 2: greedy CoT after vs self-consistency before | +50.0 [" in text


def test_archive_rows_keep_ids_and_answer_equality_but_no_text():
    from lmsi.archive import strip_text

    span = "the river that runs past the old mill"  # a long answer, e.g. a DROP span
    row = {
        "id": "q-1",
        "question": "How many?",
        "paths": ["I think", "so"],
        "answers": [span, span, "7"],
        "prediction": span,
        "correct": True,
        "format": "fewshot_cot",
    }
    out = strip_text(row)
    assert set(out) == {"id", "answers", "prediction", "correct", "format"}
    assert out["answers"][0] == out["answers"][1] == out["prediction"] != span and out["answers"][2] == "7"


def test_committed_results_page_rebuilds_from_committed_archives(tmp_path, monkeypatch):
    """docs/results.md is what the README's `lmsi results docs/runs/...` command makes from the
    archives in git: a missing archive (say, one a .gitignore hid) or a stale page fails here."""
    import re
    import shlex

    root = Path(__file__).resolve().parents[1]
    block = next(
        b
        for b in re.findall(r"```bash\n(.*?)```", (root / "README.md").read_text(), re.S)
        if "lmsi results docs/runs" in b
    )
    env = dict(re.findall(r"^(\w+)=(\S+)$", block, re.M))
    cmd = re.search(r"^lmsi results .*?(?<!\\)$", block, re.M | re.S).group(0).replace("\\\n", " ")
    cmd = re.sub(r"\$\{?(\w+)\}?", lambda m: env[m.group(1)], cmd)
    args = shlex.split(cmd)[1:]
    args[args.index("--out") + 1] = str(tmp_path / "results.md")
    monkeypatch.chdir(root)  # the page names runs by their repo-relative paths
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "results.md").read_text() == (root / "docs/results.md").read_text()


def test_committed_methods_race_page_rebuilds_from_committed_archives(tmp_path, monkeypatch):
    """docs/methods-race.md is what the `lmsi compare` command in docs/methods.md makes from the archives in git."""
    import re
    import shlex

    block = next(
        b
        for b in re.findall(r"```bash\n(.*?)```", (ROOT / "docs/methods.md").read_text(), re.S)
        if "methods-race.md" in b
    )
    args = shlex.split(block.replace("\\\n", " "))[1:]
    args[args.index("--out") + 1] = str(tmp_path / "race.md")
    monkeypatch.chdir(ROOT)
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "race.md").read_text() == (ROOT / "docs/methods-race.md").read_text()


def _script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_committed_vote_check_page_rebuilds_from_committed_archives():
    """docs/vote-check.md is what scripts/vote_check.py makes from the archives in git."""
    script = _script("vote_check")
    assert script.page(script.archives()) == (ROOT / "docs" / "vote-check.md").read_text()


def test_cross_task_page_averages_draws_per_item(tmp_path):
    """The other-task change pairs items: each item's correctness averaged over draws minus base."""
    script = _script("cross_task")
    verdicts = {"base": [1, 0, 0, 1], "round1_draw1": [1, 1, 0, 0], "round1_draw2": [1, 1, 1, 1]}
    for label, v in verdicts.items():
        rows = "".join(json.dumps({"id": f"q{i}", "correct": c}) + "\n" for i, c in enumerate(v))
        (tmp_path / "cross_run" / "gsm8k" / label / "eval").mkdir(parents=True)
        (tmp_path / "cross_run" / "gsm8k" / label / "eval" / "greedy_cot.jsonl").write_text(rows)
    line = script.page(tmp_path).splitlines()[-1]
    # per item: 1-1, 1-0, .5-0, .5-1 -> mean +0.25; q1, q2 won, q3 lost
    assert line == "| run (round 1) | gsm8k | 4 | 50.0 | 50.0, 100.0 | +25.0 " + line.split("+25.0 ")[1]
    assert line.endswith("| 2 / 1 |")


def test_committed_cross_task_page_rebuilds_from_committed_archives():
    assert _script("cross_task").page() == (ROOT / "docs" / "cross-task.md").read_text()


def test_run_archives_after_every_finished_stage(tiny_model_dir, tmp_path, monkeypatch):
    """--archive keeps each finished stage's numbers even when the run dies later (here in training)."""
    rd, arc = tmp_path / "r", tmp_path / "docs" / "r"
    inside = runner.invoke(app, ["run", "-r", str(rd), "--archive", str(rd / "a"), f"model={tiny_model_dir}", *TINY])
    assert inside.exit_code == 2 and "outside the run directory" in inside.output and not rd.exists()

    def boom(self, k, d):
        raise RuntimeError("killed in training")

    monkeypatch.setattr(Pipeline, "_train", boom)
    r = runner.invoke(app, ["run", "-r", str(rd), "--archive", str(arc), f"model={tiny_model_dir}", *TINY])
    assert r.exit_code == 1
    assert set(_manifest(arc)) == {"eval_base", "round_01/sample", "round_01/vote", "round_01/build"}
    monkeypatch.undo()
    r = runner.invoke(app, ["run", "-r", str(rd), "--archive", str(arc), f"model={tiny_model_dir}", *TINY])
    assert r.exit_code == 0, r.output
    assert _manifest(arc) == _manifest(rd) and "round_01/eval" in _manifest(arc)
    assert (arc / "report.md").read_text() == (rd / "report.md").read_text()


def test_openai_serve_restarts_the_server_on_each_rounds_model(tiny_model_dir, tmp_path):
    """openai.serve over two rounds (a fake-sampler server stands in for llama.cpp's or vLLM's; the
    real llama.cpp server is in test_export): each model is served once, in order, then stopped."""
    import subprocess
    import sys

    rd = tmp_path / "r"
    serve = f"{sys.executable} {ROOT / 'tests' / 'servers.py'} --port {{port}} --model {{model}}"
    args = ["run", "--rounds", "2", "-r", str(rd), f"model={tiny_model_dir}", *TINY, "loop.stop=false"]
    r = runner.invoke(app, [*args, "backend=openai", f"openai.serve={serve}"])
    assert r.exit_code == 0, r.output
    served = [
        line.split("--model ")[1].split()[0] for line in r.output.splitlines() if "openai.serve: starting" in line
    ]
    assert served == [str(tiny_model_dir), str(rd / "round_01" / "model"), str(rd / "round_02" / "model")]
    assert "sampler: hf" not in r.output and _manifest(rd)["round_02/eval"]
    assert str(rd) not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
