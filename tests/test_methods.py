"""train.method sft / sft weighted / dpo / grpo end to end through `lmsi run` (tiny random model,
fake sampler), plus the pair builder, the GRPO group-majority reward, the weighted loss and
`lmsi compare`."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from lmsi.build import BUILD_FILES, build_pairs, run_build
from lmsi.cli import app
from lmsi.config import BuildConfig, ConfigError, load_config
from lmsi.tasks import get_task
from lmsi.vote import vote_rows

runner = CliRunner()
# m=4 at p_correct=0.7 gives the fake sampler's questions a mix of majority and minority answers
SMALL = [
    "data.limit=4",
    "sample.m=4",
    "sample.max_new_tokens=8",
    "eval.limit=3",
    "eval.sc_m=2",
    "train.batch_size=2",
    "build.threshold=0.0",
    "build.shots=1",
]
METHODS = {
    "sft": [],
    "sft_weighted": ["train.weighting=confidence"],
    "dpo": ["train.method=dpo"],
    "grpo": ["train.method=grpo", "train.grpo_generations=2", "train.grpo_votes=4", "train.grpo_threshold=0"],
}
BUILT = {"sft": "train.jsonl", "sft_weighted": "train.jsonl", "dpo": "pairs.jsonl", "grpo": "prompts.jsonl"}


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def method_run(tiny_model_dir, tmp_path_factory, one_thread):
    """name -> finished run dir; each method runs once per module, on first use."""
    root = tmp_path_factory.mktemp("methods")
    done = {}

    def get(name):
        if name not in done:
            rd = root / name
            r = runner.invoke(
                app, ["run", "--run-dir", str(rd), f"model={tiny_model_dir}", "backend=fake", *SMALL, *METHODS[name]]
            )
            assert r.exit_code == 0, r.output
            done[name] = rd
        return done[name]

    return get


def _weights(model_dir):
    from safetensors.torch import load_file

    return load_file(str(next(model_dir.glob("*.safetensors"))))


def _changed(a, b) -> bool:
    return any(not (a[k] == b[k]).all() for k in a)


# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(METHODS))
def test_method_end_to_end(name, method_run, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rd = method_run(name)
    r1 = rd / "round_01"
    for f in ["model/config.json", "adapter/adapter_config.json", "eval/summary.json", BUILT[name]]:
        assert (r1 / f).exists(), f
    # only this method's training file: the stage wrote what train.method needs, nothing else
    assert {f for f in set(BUILD_FILES.values()) if (r1 / f).exists()} == {BUILT[name]}
    log = _jsonl(r1 / "train_log.jsonl")
    assert any("loss" in h for h in log)
    if name == "grpo":
        assert any("reward" in h for h in log)
        # the report says how many prompts were left out and shows the per-step plot
        info = json.loads((r1 / "grpo_prompts.json").read_text())
        report = (rd / "report.md").read_text()
        assert f"{info['prompts'] - info['left_out']} of {info['prompts']} prompts trained on" in report
        assert "![GRPO per step](report_grpo.png)" in report and (rd / "report_grpo.png").stat().st_size > 0
    manifest = json.loads((rd / "manifest.json").read_text())
    assert "round_01/train" in manifest["stages"] and "round_01/eval" in manifest["stages"]
    # the merged model is a plain transformers checkpoint
    model = AutoModelForCausalLM.from_pretrained(r1 / "model")
    AutoTokenizer.from_pretrained(r1 / "model")
    assert model.config.vocab_size > 0
    if name != "grpo":  # a random model never states an answer, so every GRPO reward is 0: no gradient
        assert _changed(_weights(tiny_model_dir), _weights(r1 / "model")), "training left the weights unchanged"
    assert (rd / "report.md").exists()


def test_dpo_pairs_are_majority_over_minority(method_run):
    r1 = method_run("dpo") / "round_01"
    votes = {v["id"]: v for v in _jsonl(r1 / "votes.jsonl")}
    pairs = _jsonl(r1 / "pairs.jsonl")
    assert pairs
    for p in pairs:
        assert p["answer"] == votes[p["id"]]["answer"] and p["rejected_answer"] != p["answer"]
        assert p["chosen"].endswith(f"The answer is {p['answer']}.")
        assert p["prompt"].endswith("\nA:") and p["prompt"].count("Q:") == 2  # build.shots=1 + the question


def test_confidence_weighting_changes_training(method_run, tiny_model_dir):
    rows = _jsonl(method_run("sft_weighted") / "round_01/train.jsonl")
    assert len({r["confidence"] for r in rows}) > 1  # otherwise weighting is a constant factor
    base = _weights(tiny_model_dir)
    plain, weighted = (_weights(method_run(n) / "round_01/model") for n in ("sft", "sft_weighted"))
    # the two updates differ by more than float noise (unit weights give a relative gap of ~1e-6)
    gap = sum(((plain[k] - weighted[k]) ** 2).sum() for k in base) ** 0.5
    size = sum(((plain[k] - base[k]) ** 2).sum() for k in base) ** 0.5
    assert gap / size > 1e-2


def test_weighted_trainer_with_unit_weights_matches_plain_sft(tiny_model_dir, tmp_path, one_thread):
    from lmsi.models import load_model
    from lmsi.train import run_train

    task = get_task("arith")
    rows = [
        {
            "id": q.id,
            "format": "fewshot_cot",
            "confidence": 1.0,
            "prompt": task.prompt(q.question, "fewshot_cot", 1),
            "completion": f" {q.id} reasoning of varied length {'x ' * i}The answer is {i}.",
        }
        for i, q in enumerate(task.load("train", 4))
    ]
    losses = {}
    for weighting in ("none", "confidence"):
        rd = tmp_path / weighting
        rd.mkdir()
        (rd / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        cfg = load_config(overrides=["train.batch_size=2", f"train.weighting={weighting}"])
        model, tok = load_model(str(tiny_model_dir), "float32", False)
        run_train(model, tok, rd, cfg.train, seed=0)
        losses[weighting] = [h["loss"] for h in _jsonl(rd / "train_log.jsonl") if "loss" in h]
    assert len(losses["none"]) == 2
    assert losses["confidence"] == pytest.approx(losses["none"], rel=1e-4)


@pytest.mark.parametrize("method,name", [("sft", "train.jsonl"), ("dpo", "pairs.jsonl"), ("grpo", "prompts.jsonl")])
def test_an_empty_training_file_raises_empty_training_set(method, name, tmp_path):
    from lmsi.io import InputError
    from lmsi.train import EmptyTrainingSet, run_train

    (tmp_path / name).write_text("")
    cfg = load_config(overrides=[f"train.method={method}"]).train
    with pytest.raises(EmptyTrainingSet, match=f"{name} is empty: no .*; lower build.threshold") as e:
        run_train(None, None, tmp_path, cfg, seed=0, task=get_task("arith"))
    assert isinstance(e.value, InputError) and isinstance(e.value, RuntimeError)  # RuntimeError: older callers


def test_token_weights_follow_their_rows_padded_and_padding_free():
    import torch

    from lmsi.train import add_token_weights

    examples = [{"input_ids": [1, 2, 3], "weight": 0.5}, {"input_ids": [4, 5], "weight": 2.0}]
    padded = {"labels": torch.zeros(2, 3), "attention_mask": torch.ones(2, 3)}
    assert add_token_weights(padded, examples)["token_weight"].tolist() == [[0.5, 0.5, 0.5], [2.0, 2.0, 0.0]]
    flat = {"labels": torch.zeros(1, 6), "position_ids": torch.zeros(1, 6)}  # padded to a multiple
    assert add_token_weights(flat, examples)["token_weight"].tolist() == [[0.5, 0.5, 0.5, 2.0, 2.0, 0.0]]


def test_confidence_weighting_refuses_packing_and_dft():
    for key, value in (("packing", "true"), ("loss_type", "dft")):
        with pytest.raises(ConfigError, match=f"train.weighting=confidence cannot go with train.args.{key}"):
            load_config(overrides=["train.weighting=confidence", f"train.args.{key}={value}"])


# ---------------------------------------------------------------------------
def _samples():
    task = get_task("arith")
    qs = task.load("train", 3)
    say = lambda a, why="work": f" {why} {a}. The answer is {a}."  # noqa: E731
    rows = [
        (qs[0], [say(4), say(4, "other"), say(5), " hmm no idea"]),  # 4 wins at 0.5; 5 and silence lose
        (qs[1], [say(7), say(7, "again"), say(7, "third")]),  # unanimous: nothing to prefer
        (qs[2], [say(1), say(2), say(3), " hmm"]),  # 1 wins at 0.25
    ]
    return task, [
        {"id": q.id, "question": q.question, "completions": c, "answers": [task.extract(x) for x in c]} for q, c in rows
    ]


def test_pair_builder_majority_vs_minority_and_threshold():
    task, samples = _samples()
    votes = vote_rows(samples)
    pairs = build_pairs(task, samples, votes, BuildConfig(threshold=0.5, pairs_per_question=3), shots=1, seed=0)
    assert {p["id"] for p in pairs} == {samples[0]["id"]}  # q1 unanimous, q2 below the threshold
    assert len(pairs) == 2  # two distinct majority paths, one wrong path; the silent one is not rejected by default
    for p in pairs:
        assert p["answer"] == "4" and p["rejected_answer"] == "5"
        assert p["chosen"].endswith("The answer is 4.") and p["rejected"] == " work 5. The answer is 5."
        assert p["prompt"] == task.prompt(samples[0]["question"], "fewshot_cot", 1)
    assert {p["chosen"] for p in pairs} == {" work 4. The answer is 4.", " other 4. The answer is 4."}
    low = build_pairs(task, samples, votes, BuildConfig(threshold=0.25, pairs_per_question=5), shots=1, seed=0)
    q2 = [p for p in low if p["id"] == samples[2]["id"]]
    assert len(q2) == 2 and {p["rejected_answer"] for p in q2} == {"2", "3"} and all(p["answer"] == "1" for p in q2)


def test_pair_builder_options():
    task, samples = _samples()
    votes = vote_rows(samples)
    cfg = BuildConfig(threshold=0.5, pairs_per_question=3, reject_unextractable=True)
    pairs = build_pairs(task, samples, votes, cfg, shots=1, seed=0)
    assert len(pairs) == 2 and {p["rejected_answer"] for p in pairs} == {"5", None}
    assert {p["rejected"] for p in pairs} == {" work 5. The answer is 5.", " hmm no idea"}
    one = build_pairs(task, samples, votes, BuildConfig(threshold=0.0, pairs_per_question=1), shots=1, seed=0)
    assert sorted(p["id"] for p in one) == sorted([samples[0]["id"], samples[2]["id"]])
    capped = build_pairs(
        task, samples, votes, BuildConfig(threshold=0.0, pairs_per_question=5, max_rows=3), shots=1, seed=0
    )
    assert len(capped) == 3


def test_no_pairs_when_all_paths_agree():
    task, samples = _samples()
    unanimous = [samples[1]]
    assert build_pairs(task, unanimous, vote_rows(unanimous), BuildConfig(threshold=0.0), shots=1, seed=0) == []


def test_run_build_writes_the_methods_file(tmp_path):
    task, samples = _samples()
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    (tmp_path / "votes.jsonl").write_text("".join(json.dumps(v) + "\n" for v in vote_rows(samples)))
    for method, name in BUILD_FILES.items():
        rows = run_build(task, tmp_path, BuildConfig(threshold=0.5), shots=1, seed=0, method=method)
        assert _jsonl(tmp_path / name) == rows and rows
    prompts = _jsonl(tmp_path / "prompts.jsonl")
    # grpo prompts every question with its sampled answers: the train stage votes and thresholds
    assert sorted(p["id"] for p in prompts) == sorted(s["id"] for s in samples)
    assert all(p["answers"] == s["answers"] for p in prompts for s in samples if s["id"] == p["id"])
    assert all(
        p["prompt"] == task.prompt(s["question"], "fewshot_cot", 1)
        for p in prompts
        for s in samples
        if s["id"] == p["id"]
    )


# ---------------------------------------------------------------------------
def _grpo_log(model_dir, rd, prompts: list[dict], overrides: list[str]) -> list[dict]:
    """Train grpo with the pseudo-label reward on `prompts`; the per-step log (reward, ...)."""
    from lmsi.models import load_model
    from lmsi.train import run_train

    rd.mkdir()
    (rd / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    cfg = load_config(overrides=["train.method=grpo", *overrides]).train
    model, tok = load_model(str(model_dir), "float32", False)
    run_train(model, tok, rd, cfg, seed=0, task=get_task("arith"))
    return [h for h in _jsonl(rd / "train_log.jsonl") if "reward" in h]


COLOURS = ("red", "blue", "green", "gold")


def test_grpo_learns_to_agree_with_its_pseudo_label(answer_model_dir, tmp_path, one_thread):
    """GRPO with the pseudo-label reward: where a group's answers disagree there is a signal,
    and following it raises the reward and changes the weights. (Before: on the tiny arith
    model every reward was 0 and no group ever disagreed.)"""
    prompts = [
        {"id": c, "prompt": f"Q: pick {c} A:", "choices": [], "answers": [str(n)] * 4} for n, c in enumerate(COLOURS, 1)
    ]
    overrides = [
        "train.grpo_generations=8",
        "train.grpo_votes=4",
        "train.grpo_max_tokens=8",
        "train.batch_size=2",
        "train.epochs=10",
        "train.lr=0.01",
    ]
    steps = _grpo_log(answer_model_dir, tmp_path / "grpo", prompts, overrides)
    rewards = [h["reward"] for h in steps]
    assert len(rewards) == 20
    # some group had answers that disagree: rewards of 0 and 1 side by side, so a nonzero advantage
    assert min(h["frac_reward_zero_std"] for h in steps) < 1, rewards
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last >= first + 0.2, rewards
    assert _changed(_weights(answer_model_dir), _weights(tmp_path / "grpo/model")), "GRPO left the weights unchanged"


# ---------------------------------------------------------------------------
def test_compare_runs(method_run, tmp_path):
    dirs = [method_run(n) for n in METHODS]
    out = tmp_path / "cmp.md"
    r = runner.invoke(app, ["compare", *map(str, dirs), "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    header = next(line for line in text.splitlines() if line.startswith("| |"))
    assert all(f"`{n}`" in header for n in METHODS)
    cells = [
        [c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")
    ]
    table = {c[0]: c[1:] for c in cells}
    assert table["method"] == [
        "sft (lora)",
        "sft (confidence-weighted, lora)",
        "dpo (β=0.1, lora)",
        "grpo (G=2, N=4, lora)",
    ]
    pairs = len(_jsonl(dirs[2] / "round_01/pairs.jsonl"))
    sizes = table["training set"]
    assert sizes[2] == f"{pairs} pairs" and sizes[3] == "4 prompts" and sizes[0].endswith("rows")
    assert "→" in table["greedy CoT: before → after (Δ)"][0]
    assert all(" won, " in c and c.endswith("of 3") for c in table["greedy CoT: paired Δ per item [95% CI]"])
    assert "kept" in table["pseudo-label accuracy of kept questions"][0]
    assert "train.method: 'sft' -> 'dpo'" in text  # config differences are listed
    r = runner.invoke(app, ["compare", str(tmp_path)])
    assert r.exit_code == 2 and "config.yaml" in r.output


def test_method_config_is_checked():
    with pytest.raises(ConfigError, match="train.weighting"):
        load_config(overrides=["train.method=dpo", "train.weighting=confidence"])
    with pytest.raises(ConfigError, match="allowed values"):
        load_config(overrides=["train.method=ppo"])
    assert load_config(overrides=["train.method=grpo"]).train.method == "grpo"


def test_samples_from_reuses_one_sample_budget(method_run, tmp_path):
    """--samples-from: the dpo run trains on the sft run's very samples and base eval, and keeps
    their wall times; a run whose sampling config differs is refused."""
    src = method_run("sft")
    rd = tmp_path / "dpo_reused"
    cfg = yaml.safe_load((src / "config.yaml").read_text())
    r = runner.invoke(
        app,
        [
            "run",
            "--run-dir",
            str(rd),
            f"model={cfg['model']}",
            "backend=fake",
            *SMALL,
            *METHODS["dpo"],
            "--samples-from",
            str(src),
        ],
    )
    assert r.exit_code == 0, r.output
    assert (rd / "round_01/samples.jsonl").read_bytes() == (src / "round_01/samples.jsonl").read_bytes()
    assert (rd / "eval_base/summary.json").read_bytes() == (src / "eval_base/summary.json").read_bytes()
    mine, theirs = (json.loads((d / "manifest.json").read_text())["stages"] for d in (rd, src))
    assert mine["round_01/sample"]["seconds"] == theirs["round_01/sample"]["seconds"]
    assert mine["round_01/sample"]["reused_from"] == str(src) and "reused_from" not in mine["round_01/train"]
    assert (rd / "round_01/pairs.jsonl").exists()
    r = runner.invoke(
        app,
        [
            "run",
            "--run-dir",
            str(tmp_path / "other"),
            f"model={cfg['model']}",
            "backend=fake",
            *SMALL,
            "sample.m=3",
            "--samples-from",
            str(src),
        ],
    )
    assert r.exit_code == 2 and "sample.m" in r.output and not (tmp_path / "other").exists()
    # a second build/train draw on the same samples: train.seed differs, the samples do not
    r = runner.invoke(
        app,
        [
            "run",
            "--run-dir",
            str(tmp_path / "seed1"),
            f"model={cfg['model']}",
            "backend=fake",
            *SMALL,
            *METHODS["sft"],
            "train.seed=1",
            "--samples-from",
            str(src),
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "seed1/round_01/samples.jsonl").read_bytes() == (src / "round_01/samples.jsonl").read_bytes()
    rows = [(d / "round_01/train.jsonl").read_text() for d in (src, tmp_path / "seed1")]
    assert rows[0] and rows[0] != rows[1]  # another row draw and order


def test_samples_from_serves_a_variant_that_evaluates_fewer_modes(method_run, tmp_path):
    """A build/train variant may evaluate a subset of the source's modes (greedy CoT only, say):
    the borrowed base eval still holds every mode, the variant's rounds only the ones it asked for.
    The sc path count may differ only when sc is no longer evaluated."""
    src = method_run("sft")
    cfg = yaml.safe_load((src / "config.yaml").read_text())
    base = ["run", f"model={cfg['model']}", "backend=fake", *SMALL, "--samples-from", str(src)]
    rd = tmp_path / "strict"
    r = runner.invoke(
        app, [*base, "--run-dir", str(rd), "eval.modes=[greedy_cot]", "eval.sc_m=3", "build.threshold=0.75"]
    )
    assert r.exit_code == 0, r.output
    assert (rd / "eval_base/summary.json").read_bytes() == (src / "eval_base/summary.json").read_bytes()
    after = json.loads((rd / "round_01/eval/summary.json").read_text())
    assert "greedy_cot" in after and "sc" not in after and "direct" not in after
    # a run that borrowed its stages lends them on in turn, naming itself as their source
    r = runner.invoke(
        app,
        [
            "run",
            f"model={cfg['model']}",
            "backend=fake",
            *SMALL,
            "--samples-from",
            str(rd),
            "--run-dir",
            str(tmp_path / "chained"),
            "eval.modes=[greedy_cot]",
            "build.threshold=0.5",
        ],
    )
    assert r.exit_code == 0, r.output
    chained = json.loads((tmp_path / "chained/manifest.json").read_text())["stages"]
    assert chained["round_01/sample"]["reused_from"] == str(rd) and chained["eval_base"]["reused_from"] == str(rd)
    r = runner.invoke(app, [*base, "--run-dir", str(tmp_path / "sc3"), "eval.modes=[greedy_cot,sc]", "eval.sc_m=3"])
    assert r.exit_code == 2 and "eval.sc_m" in r.output and not (tmp_path / "sc3/round_01").exists()
    # the variant is compared with its source after round 1, in `lmsi compare` and on the results page
    r = runner.invoke(app, ["compare", str(src), str(rd), "--round", "1"])
    table = {
        c[0]: c[1:]
        for c in (
            [x.strip() for x in ln.strip().strip("|").split("|")] for ln in r.output.splitlines() if ln.startswith("| ")
        )
    }
    assert r.exit_code == 0 and table["round"] == ["1", "1"], r.output
    assert table["self-consistency maj@m: before → after (Δ)"][1].endswith("→ –")  # sc not evaluated after
    assert "build.threshold: 0.0 -> 0.75" in r.output
    assert table[f"greedy CoT vs `{src.name}`, paired"][0] == "–" and table[f"greedy CoT vs `{src.name}`, paired"][
        1
    ].endswith("of 3")
    assert table["greedy CoT after vs self-consistency before, paired"][1].endswith("of 3")
    r = runner.invoke(app, ["compare", str(src), str(rd), "--round", "2"])
    assert r.exit_code == 2 and "round 2 has no evaluation" in r.output
    out = tmp_path / "page.md"
    r = runner.invoke(app, ["results", str(src), "--out", str(out), "--compare", f"{src},{rd}"])
    assert r.exit_code == 0, r.output
    page = out.read_text()
    assert f"## Variants after round 1: {src.name}, strict" in page and f"| | `{src.name}` | `strict` |" in page


def test_results_page_gathers_signal_eval_and_run_dirs_with_their_commands(method_run, tmp_path, monkeypatch):
    import sys

    sig, ev = tmp_path / "sig", tmp_path / "ev"
    for args in (
        ["signal", "--task", "arith", "--paths", "2", "--limit", "4", "-r", str(sig), "backend=fake"],
        ["eval", "--task", "arith", "--limit", "4", "-r", str(ev), "backend=fake"],
    ):
        monkeypatch.setattr(sys, "argv", ["lmsi", *args])  # what the console script sees
        assert runner.invoke(app, args).exit_code == 0
    out = tmp_path / "docs" / "results.md"
    r = runner.invoke(
        app,
        [
            "results",
            str(sig),
            str(ev),
            str(method_run("sft")),
            "--out",
            str(out),
            "--alias",
            "embedded:qwen2.5-coder-0.5b=Qwen 0.5B",
        ],
    )
    assert r.exit_code == 0, r.output
    page = out.read_text()
    assert "## Vote signal" in page and "| arith (train) | `Qwen 0.5B` | 4 | 2 |" in page
    assert "## Reference accuracy" in page and f"-r {ev} backend=fake" in page  # the recorded command
    assert "## Self-improvement run: sft" in page and "### Held-out accuracy" in page
    assert (out.parent / "results-sft.png").exists() and "](results-sft.png)" in page and "](report.png)" not in page
    bad = runner.invoke(app, ["results", str(tmp_path), "--out", str(out)])
    assert bad.exit_code == 2 and "not a finished lmsi run" in bad.output


def test_results_cites_every_distinct_command_of_a_run(tmp_path):
    from lmsi.results import _command

    (tmp_path / "commands.txt").write_text(
        "2026-01-01T00:00:00  lmsi run -r x sample.m=8\n2026-01-01T01:00:00  lmsi run -r x sample.m=8\n"
        "2026-01-01T02:00:00  lmsi run -r x sample.m=8 --samples-from sig\n2026-01-01T03:00:00  lmsi report -r x\n"
    )
    assert _command(tmp_path).splitlines() == [
        "lmsi run -r x sample.m=8",
        "lmsi run -r x sample.m=8 --samples-from sig",
    ]
    assert _command(tmp_path / "missing") == "(not recorded)"
