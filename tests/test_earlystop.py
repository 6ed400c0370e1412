"""Exact early stopping (issue 20, item 1): the stopped prefix of a question's paths decides the
same majority answer, the same kept questions, pseudo-labels, training rows and SC verdicts as
all m paths; a wave's text does not depend on how many waves are drawn."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmsi.backends import SamplingParams
from lmsi.backends.fake import FakeSampler
from lmsi.backends.hf import HFSampler
from lmsi.build import build_rows
from lmsi.config import BuildConfig, EvalConfig, SampleConfig, load_config
from lmsi.earlystop import Waves, draw_waves, full_vote_users, stop_point
from lmsi.evaluate import run_eval
from lmsi.io import read_jsonl, write_jsonl
from lmsi.pipeline import Pipeline
from lmsi.report import format_table
from lmsi.rundir import RunDir
from lmsi.sample import run_sample
from lmsi.signal import run_signal
from lmsi.stats import probe_agreement
from lmsi.tasks import get_task
from lmsi.vote import majority, vote_rows

RUNS = Path(__file__).resolve().parents[1] / "docs" / "runs"


def _outcome(answers, m, threshold):
    answer, share, _ = majority(answers, m)
    return answer, answer is not None and round(share, 4) >= threshold


@settings(max_examples=600, deadline=None)
@given(
    st.lists(st.sampled_from(["1", "2", "3", None]), min_size=1, max_size=12),
    st.integers(1, 12),
    st.sampled_from([0.0, 0.25, 0.3, 0.5, 0.6, 0.75, 1.0]),
)
def test_stopped_prefix_decides_like_all_paths(answers, wave, threshold):
    m = len(answers)
    d = stop_point(answers, wave, threshold)
    assert _outcome(answers[:d], m, threshold) == _outcome(answers, m, threshold)
    assert majority(answers[: stop_point(answers, wave)], m)[0] == majority(answers)[0]  # sc: the answer only


def test_the_rule_does_stop_and_keeps_ties():
    assert stop_point(["7"] * 8, 4, 0.5) == 4  # 4 of 8 agree: neither the answer nor the pass can change
    assert stop_point(["7", "7", "7", "5"] + ["5"] * 4, 4, 0.5) == 8  # 3-1: four more 5s would win
    # a 4-4 tie goes to the answer seen first: after 4 x "7" an unseen answer can only tie, and loses
    assert stop_point(["7"] * 4 + ["5"] * 4, 4) == 4 and majority(["7"] * 4 + ["5"] * 4)[0] == "7"
    assert stop_point(["5", "7", "7", "7"] + ["5"] * 4, 4) == 8  # "5" was seen first: it could still tie and win
    assert stop_point([None] * 4 + ["3"] * 4, 4) == 8  # no answer yet: anything can win


def test_kept_questions_stop_only_with_max_paths_distinct_majority_paths():
    # build keeps the first max_paths distinct majority reasonings: all of them must be drawn already
    assert stop_point(["7"] * 8, 4, 0.5, keys=["a"] * 8, distinct=2) == 8
    assert stop_point(["7"] * 8, 4, 0.5, keys=list("aabbcccc"), distinct=2) == 4
    assert stop_point(["7"] * 4 + ["5"] * 4, 2, 0.8, keys=["a"] * 8, distinct=2) == 6  # 6 of 8 at most: never passes


def _recorded(pattern):
    files = sorted(RUNS.glob(pattern))
    assert files, f"no recorded runs match {pattern}"
    return files


def test_replay_on_recorded_sample_rounds_keeps_votes_and_kept_questions():
    for f in _recorded("*/round_*/samples.jsonl"):
        cfg = RunDir(f.parents[1]).config  # config.yaml, or config.json in older archives
        t, m = cfg["build"]["threshold"], cfg["sample"]["m"]
        rows = [{**r, "question": None} for r in read_jsonl(f)]  # archives hold no text
        if any(len(r["answers"]) != m for r in rows):
            continue  # an archive of an early-stopped run has no full votes to compare with
        full = {v["id"]: v for v in vote_rows(rows)}
        stopped = vote_rows([{**r, "answers": r["answers"][: stop_point(r["answers"], 4, t)], "m": m} for r in rows])
        for v in stopped:
            assert v["answer"] == full[v["id"]]["answer"], (f, v["id"])
            assert (v["confidence"] >= t) == (full[v["id"]]["confidence"] >= t), (f, v["id"])
            assert v["confidence"] <= full[v["id"]]["confidence"]  # a lower bound of the full share
        recorded = {v["id"]: v["answer"] for v in read_jsonl(f.with_name("votes.jsonl"))}
        if cfg["build"].get("vote", "majority") == "majority":
            assert {i: v["answer"] for i, v in full.items()} == recorded


def test_replay_on_recorded_sc_evals_keeps_verdicts():
    n = 0
    for f in _recorded("*/**/sc.jsonl"):
        for r in read_jsonl(f):
            d = stop_point(r["answers"], 2)
            assert majority(r["answers"][:d])[0] == r["prediction"], (f, r["id"])
            n += 1
    assert n > 1000


def _two_draws(sampler, waves_kw, questions, tmp_path, threshold=0.5, max_paths=2):
    task, cfg = get_task("arith"), SampleConfig(m=8, wave=2, shots=2, max_new_tokens=20)
    out = {}
    for stop in (False, True):
        d = tmp_path / f"stop{stop}"
        d.mkdir()
        w = Waves(m=8, size=2, stop=stop, threshold=threshold, distinct=max_paths, **waves_kw)
        out[stop] = run_sample(task, sampler, questions, d, cfg, seed=3, waves=w)
    return task, out


def test_fake_sampler_early_stop_is_a_prefix_and_builds_the_same_rows(tmp_path):
    task = get_task("arith")
    questions = task.load("train", 12)
    # the fake sampler's paths share one reasoning text: more than one distinct majority path is never drawn
    _, rows = _two_draws(FakeSampler(p_correct=0.6), {}, questions, tmp_path, max_paths=1)
    full, early = ({r["id"]: r for r in rows[s]} for s in (False, True))
    assert sum(r["drawn"] for r in early.values()) < sum(r["drawn"] for r in full.values())
    for i, r in early.items():
        assert r["completions"] == full[i]["completions"][: r["drawn"]] and r["m"] == 8
    b = BuildConfig(max_paths=1, max_rows=0)
    va, vb = vote_rows(rows[False]), vote_rows(rows[True])
    assert [v["answer"] for v in va] == [v["answer"] for v in vb]
    strip = lambda rs: [{k: x[k] for k in ("id", "prompt", "completion")} for x in rs]  # noqa: E731
    assert strip(build_rows(task, rows[False], va, b, 2, 0)) == strip(build_rows(task, rows[True], vb, b, 2, 0))


def test_wave_text_does_not_depend_on_later_waves_or_other_questions_tiny_hf(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    s = HFSampler(model, tok, batch_rows=16)
    task = get_task("arith")
    qs = task.load("train", 3)
    prompts, ids = [task.prompt(q.question, "fewshot_cot", 1) for q in qs], [q.id for q in qs]
    params = SamplingParams(temperature=1.0, max_new_tokens=10, stop=task.stop)
    six = draw_waves(s, prompts, ids, params, Waves(m=6, size=2, stop=False), 5, lambda p, i: None)
    two = draw_waves(s, prompts[1:2], ids[1:2], params, Waves(m=2, size=2, stop=False), 5, lambda p, i: None)
    assert [len(p) for p in six] == [6, 6, 6]
    assert two[0] == six[1][:2]  # first wave alone, without the other questions, is the same text
    assert len({p for ps in six for p in ps}) > 3  # sampled, not one greedy text


def test_fake_sampler_wave_text_is_fixed_by_seed_question_and_wave():
    task = get_task("arith")
    qs = task.load("train", 4)
    prompts, ids = [task.prompt(q.question, "fewshot_cot", 1) for q in qs], [q.id for q in qs]
    params = SamplingParams(temperature=0.7, max_new_tokens=10)
    full = draw_waves(
        FakeSampler(p_correct=0.5), prompts, ids, params, Waves(m=8, size=2, stop=False), 1, lambda p, i: None
    )
    alone = draw_waves(
        FakeSampler(p_correct=0.5), prompts[2:], ids[2:], params, Waves(m=4, size=2, stop=False), 1, lambda p, i: None
    )
    assert alone == [p[:4] for p in full[2:]]


def test_a_wave_is_one_call_over_the_open_questions_with_their_own_seeds():
    """A sampler that takes per-prompt seeds gets one call per wave (a full decode batch), and draws
    the same paths as one call per question; one that does not still gets a call per question."""

    class Counting(FakeSampler):
        calls = 0

        def generate(self, prompts, params, progress=None):
            type(self).calls += 1
            return super().generate(prompts, params, progress)

    class PerQuestion(Counting):
        prompt_seeds, calls = False, 0

    task = get_task("arith")
    qs = task.load("train", 5)
    prompts, ids = [task.prompt(q.question, "fewshot_cot", 1) for q in qs], [q.id for q in qs]
    params, waves = SamplingParams(temperature=0.7), Waves(m=8, size=2, stop=False)
    batched = draw_waves(Counting(p_correct=0.5), prompts, ids, params, waves, 1, lambda p, i: None)
    apart = draw_waves(PerQuestion(p_correct=0.5), prompts, ids, params, waves, 1, lambda p, i: None)
    assert batched == apart and Counting.calls == 4 and PerQuestion.calls == 4 * 5


def test_sc_eval_early_stop_keeps_verdicts_and_records_paths_drawn(tmp_path):
    task = get_task("arith")
    examples = task.load(task.eval_split, 10)
    full = run_eval(
        task,
        FakeSampler(p_correct=0.6),
        examples,
        tmp_path / "a",
        EvalConfig(modes=["greedy_cot", "sc"], sc_m=8),
        2,
        20,
        0,
        waves=Waves(m=8, size=2, stop=False),
    )
    early = run_eval(
        task,
        FakeSampler(p_correct=0.6),
        examples,
        tmp_path / "b",
        EvalConfig(modes=["greedy_cot", "sc"], sc_m=8),
        2,
        20,
        0,
        waves=Waves(m=8, size=2),
    )
    a, b = read_jsonl(tmp_path / "a" / "sc.jsonl"), read_jsonl(tmp_path / "b" / "sc.jsonl")
    assert [r["correct"] for r in a] == [r["correct"] for r in b]
    assert [r["prediction"] for r in a] == [r["prediction"] for r in b]
    assert early["sc"]["paths_drawn"] < full["sc"]["paths_drawn"] == 8 * len(examples)
    assert read_jsonl(tmp_path / "a" / "greedy_cot.jsonl") == read_jsonl(tmp_path / "b" / "greedy_cot.jsonl")


@pytest.mark.parametrize(
    "override",
    ["build.vote=weighted", "train.weighting=confidence", "train.method=dpo"],
)
def test_early_stop_is_off_where_the_full_vote_is_used(override):
    cfg = load_config(overrides=["sample.early_stop=true", override])
    assert full_vote_users(cfg, has_eval=True)["sample"]
    on = load_config(overrides=["sample.early_stop=true", "loop.stop=false"])
    assert not load_config().sample.early_stop  # off by default (docs/early-stopping.md says why)
    assert full_vote_users(on, has_eval=True) == {"sample": [], "sc": []}
    assert full_vote_users(load_config(overrides=["loop.stop=true"]), has_eval=True)["sc"]
    assert full_vote_users(load_config(overrides=["train.draws=2", "loop.stop=false"]), has_eval=True)["sc"]


def test_pipeline_records_paths_drawn_and_keeps_full_m_for_weighted_votes(tmp_path):
    common = [
        "backend=fake",
        "data.limit=8",
        "eval.limit=4",
        "sample.m=8",
        "sample.wave=2",
        "build.max_paths=1",
        "sample.early_stop=true",
    ]
    p = Pipeline(load_config(overrides=common + [f"run_dir={tmp_path / 'on'}", "loop.stop=false"]), log=lambda *_: None)
    p.stage("sample", 1)
    info = p.manifest.data["stages"]["round_01/sample"]
    assert info["paths_drawn"] < info["paths_full"] == 64
    p = Pipeline(
        load_config(overrides=common + [f"run_dir={tmp_path / 'w'}", "build.vote=weighted"]), log=lambda *_: None
    )
    p.stage("sample", 1)
    assert all(r["drawn"] == 8 for r in read_jsonl(p.round_dir(1) / "samples.jsonl"))


def test_signal_draws_every_path_even_with_early_stop_on(tmp_path):
    over = ["backend=fake", "sample.early_stop=true", "sample.wave=2", "loop.stop=false"]
    _, out = run_signal("arith", None, 8, None, 6, False, tmp_path / "sig", None, over, log=lambda *_: None)
    assert all(len(r["answers"]) == 8 for r in read_jsonl(out / "eval" / "sc.jsonl"))


class _Dies(FakeSampler):
    """Raises on its `left`-th call: a crash in the middle of a chunk's waves."""

    def __init__(self, left: int):
        super().__init__(p_correct=0.6)
        self.left = left

    def generate(self, prompts, params, progress=None):
        self.left -= 1
        if self.left < 0:
            raise RuntimeError("killed")
        return super().generate(prompts, params, progress)


def test_waves_resume_after_a_crash_to_the_same_bytes(tmp_path):
    task, cfg = get_task("arith"), SampleConfig(m=8, wave=2, shots=2, batch_rows=6)
    qs, waves = task.load("train", 10), Waves(m=8, size=2, threshold=0.5, distinct=1)
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    # chunks of 3 questions (6 rows / 2 per wave) take 1 to 4 calls, one per wave: the first crash
    # lands in the first chunks, the second one (its 8th call) after a chunk is committed
    for left, committed in ((2, 0), (7, 3)):
        with pytest.raises(RuntimeError):
            run_sample(task, _Dies(left), qs, tmp_path / "a", cfg, 3, waves)
        f = tmp_path / "a" / "samples.jsonl"
        assert (len(read_jsonl(f)) if f.exists() else 0) >= committed
    with open(tmp_path / "a" / "samples.jsonl", "a") as f:
        f.write('{"id": "torn')  # a torn last line, as kill -9 leaves it
    run_sample(task, FakeSampler(p_correct=0.6), qs, tmp_path / "a", cfg, 3, waves)
    run_sample(task, FakeSampler(p_correct=0.6), qs, tmp_path / "b", cfg, 3, waves)
    a, b = ((tmp_path / d / "samples.jsonl").read_bytes() for d in "ab")
    assert a == b and len(read_jsonl(tmp_path / "a" / "samples.jsonl")) == 10


def test_agreement_of_early_stopped_sc_rows_counts_undrawn_paths_as_abstaining(tmp_path):
    rows = [{"id": "a", "answers": ["3"] * 4, "m": 8}, {"id": "b", "answers": ["1", "2"], "m": 2}]
    write_jsonl(tmp_path / "sc.jsonl", rows)
    assert probe_agreement(tmp_path) == (4 / 8 + 1 / 2) / 2


def test_sc_eval_waves_resume_after_a_crash_to_the_same_bytes(tmp_path):
    task = get_task("arith")
    examples, cfg = task.load(task.eval_split, 10), EvalConfig(modes=["greedy_cot", "sc"], sc_m=4)
    args = (examples, cfg, 2, 20, 0)
    with pytest.raises(RuntimeError):  # chunks of 5 items: 1 greedy call, then 1 or 2 wave calls each
        run_eval(task, _Dies(3), args[0], tmp_path / "a", *args[1:], batch_rows=15, waves=Waves(m=4, size=2))
    assert read_jsonl(tmp_path / "a" / "cot.partial.jsonl", tolerate_torn_tail=True)
    run_eval(
        task, FakeSampler(p_correct=0.6), args[0], tmp_path / "a", *args[1:], batch_rows=15, waves=Waves(m=4, size=2)
    )
    run_eval(
        task, FakeSampler(p_correct=0.6), args[0], tmp_path / "b", *args[1:], batch_rows=15, waves=Waves(m=4, size=2)
    )
    for f in ("sc.jsonl", "greedy_cot.jsonl"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_no_call_once_every_question_is_settled():
    """A run whose questions all settle in the first wave makes no call over zero prompts (the hf
    sampler refused one: the kill -9 test's early-stopping run died on it)."""

    class Refusing(FakeSampler):
        def generate(self, prompts, params, progress=None):
            assert prompts, "a call over no prompts"
            return super().generate(prompts, params, progress)

    task = get_task("arith")
    qs = task.load("train", 3)
    prompts, ids = [task.prompt(q.question, "fewshot_cot", 1) for q in qs], [q.id for q in qs]
    paths = draw_waves(Refusing(), prompts, ids, SamplingParams(temperature=0.7), Waves(m=8, size=4), 1, lambda p, i: 1)
    assert [len(p) for p in paths] == [4, 4, 4]


def test_hf_sampler_takes_an_empty_call(tiny_model_dir):
    from lmsi.backends.hf import HFSampler

    assert HFSampler(str(tiny_model_dir)).generate([], SamplingParams(temperature=0.7, n=4, max_new_tokens=4)) == []


def test_sc_limit_scores_sc_on_the_first_questions_and_greedy_on_all(tmp_path):
    """eval.sc_limit: self-consistency on the first N questions (the expensive mode), greedy CoT
    on all of them, with the same greedy verdicts as an evaluation that runs sc on every one."""
    task = get_task("arith")
    examples = task.load(task.eval_split, 10)
    args = (2, 20, 0)
    every = run_eval(
        task, FakeSampler(p_correct=0.6), examples, tmp_path / "a", EvalConfig(modes=["greedy_cot", "sc"]), *args
    )
    cfg = EvalConfig(modes=["greedy_cot", "sc"], sc_limit=4)
    first = run_eval(task, FakeSampler(p_correct=0.6), examples, tmp_path / "b", cfg, *args)
    assert (every["greedy_cot"]["n"], every["sc"]["n"], first["greedy_cot"]["n"], first["sc"]["n"]) == (10, 10, 10, 4)
    sc = read_jsonl(tmp_path / "b" / "sc.jsonl")
    assert [r["id"] for r in sc] == [e.id for e in examples[:4]] and all(len(r["paths"]) == 4 for r in sc)
    greedy = [read_jsonl(tmp_path / d / "greedy_cot.jsonl") for d in "ab"]
    assert [r["prediction"] for r in greedy[0]] == [r["prediction"] for r in greedy[1]]
    assert not list((tmp_path / "b").glob("*.partial.jsonl"))
    table = format_table(first, first)
    assert "maj@m (first 4 questions)" in table and "greedy CoT (first" not in table
