"""`lmsi eval --export lm-eval`: a run's evaluation in lm-evaluation-harness's output layout, read
back with lm-eval's own helpers and checked against the keys a real lm-eval run writes."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmsi.cli import app
from lmsi.io import read_jsonl
from lmsi.tasks import get_task
from lmsi.tasks.data import data_root

pytest.importorskip("lm_eval")
from lm_eval.api.metrics import mean_stderr  # noqa: E402
from lm_eval.config.task import TaskConfig  # noqa: E402
from lm_eval.result_schema import EvalResults, SampleResult  # noqa: E402
from lm_eval.utils import (  # noqa: E402
    get_file_task_name,
    get_latest_filename,
    get_results_filenames,
    get_sample_results_filenames,
    make_table,
)

ROOT = Path(__file__).resolve().parents[1]
# what lm-eval adds about its own process (environment, tokenizer, its version): not ours to claim
ENV_KEYS = {
    "pretty_env_info",
    "transformers_version",
    "lm_eval_version",
    "upper_git_hash",
    "tokenizer_pad_token",
    "tokenizer_eos_token",
    "tokenizer_bos_token",
    "eot_token_id",
    "max_length",
}


def _export(tmp_path: Path, modes=("greedy-cot", "sc")) -> tuple[Path, Path]:
    run = tmp_path / "run"
    args = ["eval", "--task", "arith", "--limit", "6", "-r", str(run), "--export", "lm-eval"]
    for m in modes:
        args += ["--mode", m]
    r = CliRunner().invoke(app, [*args, "backend=fake", "eval.sc_m=3"])
    assert r.exit_code == 0, r.output
    return run, run / "lm-eval"


def _files(out: Path) -> list[str]:
    return sorted(str(p) for p in out.rglob("*") if p.is_file())


def test_export_is_read_by_lm_eval_helpers(tmp_path):
    run, out = _export(tmp_path)
    files = _files(out)
    results = get_results_filenames(files)
    samples = get_sample_results_filenames(files)
    assert len(results) == 1 and len(samples) == 2, files
    res = json.loads(Path(get_latest_filename(results)).read_text())
    assert set(res) <= set(EvalResults.__annotations__)
    tasks = {get_file_task_name(Path(f).name) for f in samples}
    assert tasks == set(res["results"]) == set(res["configs"]) == set(res["versions"])

    for mode, filt in (("greedy_cot", "lmsi-extract"), ("sc", "maj@3")):
        rows = read_jsonl(run / "eval" / f"{mode}.jsonl")
        correct = [float(r["correct"]) for r in rows]
        task = next(t for t in tasks if t.endswith(mode))
        m = res["results"][task]
        assert m[f"exact_match,{filt}"] == pytest.approx(sum(correct) / len(correct))
        assert m[f"exact_match_stderr,{filt}"] == pytest.approx(mean_stderr(correct))
        assert res["n-samples"][task]["effective"] == len(rows)
        lines = read_jsonl(next(Path(f) for f in samples if get_file_task_name(Path(f).name) == task))
        assert [s["exact_match"] for s in lines] == correct
        assert [s["doc_id"] for s in lines] == list(range(len(rows)))
        for s, r in zip(lines, rows):
            assert set(s) - set(SampleResult.__annotations__) == {"exact_match"}
            assert s["filter"] == filt and s["metrics"] == ["exact_match"]
            assert s["arguments"]["gen_args_0"]["arg_0"] == r["prompt"]
            assert s["resps"] == [r["paths"]]
            assert s["filtered_resps"] == [r["prediction"] if r["prediction"] is not None else "[invalid]"]
            assert s["target"] == r["gold"]

    table = make_table(res)  # what lm-eval prints for its own results
    for task in tasks:
        assert task in table
    # the samples load as a dataset, as lm-eval's hub details do
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("json", data_files=samples[0], split="train")
    assert len(ds) == 6


def _made_up_gsm8k(tmp_path, question: str, pairs) -> Path:
    """A GSM8K-shaped test split of made-up sums (question formatted with a and b) under
    tmp_path/data/gsm8k; returns the data folder a harness is pointed at."""
    data = tmp_path / "data" / "gsm8k"
    data.mkdir(parents=True)
    items = [{"question": question.format(a=a, b=b), "answer": f"#### {a + b}"} for a, b in pairs]
    (data / "test.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    return data.parent


def test_export_keys_match_a_real_lm_eval_run(tmp_path, tiny_model_dir):
    """A 2-item lm-eval run (its own evaluator and writer, the repo's lmsi_gsm8k_cot task, the tiny model) writes
    the keys our export must have: every key it writes about the evaluation, none it doesn't."""
    data_dir = _made_up_gsm8k(tmp_path, "Tom has {a} pens and buys {b}. How many now?", ((2, 3), (4, 5)))
    ref = tmp_path / "ref"
    # in-process, as lm_eval's CLI does it (its CLI first indexes every stock task: minutes on 2 CPUs)
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    meta = {"data_dir": str(data_dir)}
    tracker = EvaluationTracker(output_path=str(ref))
    tasks = TaskManager(include_path=str(ROOT / "benchmarks" / "lmeval_tasks"), include_defaults=False, metadata=meta)
    got = simple_evaluate(
        model="hf",
        model_args=f"pretrained={tiny_model_dir},dtype=float32",
        tasks=["lmsi_gsm8k_cot"],
        limit=2,
        batch_size=2,
        device="cpu",
        gen_kwargs="max_gen_toks=4",
        log_samples=True,
        evaluation_tracker=tracker,
        task_manager=tasks,
        metadata=meta,
    )
    samples = got.pop("samples")
    tracker.save_results_aggregated(results=got, samples=samples)
    tracker.save_results_samples(task_name="lmsi_gsm8k_cot", samples=samples["lmsi_gsm8k_cot"])
    ref_files = _files(ref)
    ref_res = json.loads(Path(get_results_filenames(ref_files)[0]).read_text())
    ref_sample = read_jsonl(Path(get_sample_results_filenames(ref_files)[0]))[0]

    _, out = _export(tmp_path, modes=("greedy-cot",))
    files = _files(out)
    res = json.loads(Path(get_results_filenames(files)[0]).read_text())
    sample = read_jsonl(Path(get_sample_results_filenames(files)[0]))[0]

    assert set(res) == set(ref_res) - ENV_KEYS
    (ref_task,), (task,) = ref_res["results"], res["results"]
    fixed = {"name", "alias", "sample_len"}
    assert fixed <= set(res["results"][task])
    assert {k.split(",")[0] for k in res["results"][task]} == {k.split(",")[0] for k in ref_res["results"][ref_task]}
    assert set(res["configs"][task]) <= {f.name for f in dataclasses.fields(TaskConfig)}
    assert set(res["config"]) == set(ref_res["config"])
    assert set(res["n-samples"][task]) == set(ref_res["n-samples"][ref_task])
    assert set(sample) == set(ref_sample)
    assert set(sample["arguments"]["gen_args_0"]) == set(ref_sample["arguments"]["gen_args_0"])
    assert set(sample["arguments"]["gen_args_0"]["arg_1"]) <= set(ref_sample["arguments"]["gen_args_0"]["arg_1"])


def test_crosscheck_script_small_limit(tmp_path, tiny_model_dir):
    """benchmarks/lmeval_crosscheck.py end to end on 2 made-up items and the tiny model: both
    harnesses run, their items line up by gold answer, and the report has the table and commands."""
    data_dir = _made_up_gsm8k(tmp_path, "Ann has {a} cups and gets {b}. How many now?", ((3, 4), (5, 6)))
    report = tmp_path / "report.md"
    cmd = [
        *(sys.executable, str(ROOT / "benchmarks" / "lmeval_crosscheck.py"), "--tasks", "gsm8k", "--limit", "2"),
        *("--model", str(tiny_model_dir), "--data-dir", str(data_dir), "--out", str(tmp_path / "out")),
        *("--max-gen-toks", "6", "--batch-size", "1", "--report", str(report)),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stderr[-3000:]
    text = report.read_text()
    assert "Gold answers aligned item by item: gsm8k True" in text
    assert "| gsm8k | 2 |" in text and "strict-match" in text and "flexible-extract" in text
    assert "lmsi eval --task gsm8k" in text and "lm_eval run --model hf" in text
    summary = json.loads(report.with_suffix(".json").read_text())
    assert set(summary["gsm8k"]) == {"strict-match", "flexible-extract", "same_text"}


@pytest.mark.parametrize("lm_task,task", [("lmsi_gsm8k_cot", "gsm8k"), ("lmsi_arc_challenge_cot", "arc_challenge")])
def test_lmeval_task_prompt_is_lmsis(lm_task, task):
    """The repo's lm-eval tasks build, with lm-eval's own few-shot templating, the very prompt lmsi
    sends for the same item, and the same gold answer."""
    from lm_eval.tasks import TaskManager, get_task_dict

    if not (data_root() / "gsm8k" / "test.jsonl").is_file():
        pytest.skip("benchmark copies not found (LMSI_DATA)")
    meta = {"data_dir": str(data_root())}
    tm = TaskManager(include_path=str(ROOT / "benchmarks" / "lmeval_tasks"), include_defaults=False, metadata=meta)
    lm = get_task_dict([lm_task], tm)[lm_task]
    docs = list(lm.test_docs())[:8]
    ours = get_task(task)
    for doc, ex in zip(docs, ours.load("test", 8)):
        assert lm.fewshot_context(doc, lm.config.num_fewshot) == ours.prompt(ex.question, "fewshot_cot", 3)
        assert lm.doc_to_target(doc).strip("()") == ex.answer
    assert lm.config.generation_kwargs["until"] == list(ours.stop)
    # every filter builds with the settings the YAML gives it (a wrong filter name or keyword
    # only fails after the whole generation, when lm-eval applies the filters)
    for ensemble in lm._filters:
        for make in ensemble.filters:
            make()
