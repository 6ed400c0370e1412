"""GRPO with a majority-vote reward (issue 24): the pseudo-label comes from N votes (the round's
sampled paths, topped up when m < N), not from the group being trained; ambiguous prompts are
left out; completions without an answer are penalised; the completion cap is measured from the
sampled paths; per-step logs (reward, agreement, all-equal share, length); the vLLM switch."""

import json

import pytest

from lmsi.compare import _train_items
from lmsi.config import ConfigError, load_config
from lmsi.tasks import get_task
from lmsi.train import grpo as grpo_mod
from lmsi.train.grpo_labels import (
    auto_cap,
    completion_cap,
    label_prompts,
    label_rewards,
    make_label_reward,
    pseudo_label,
    select_prompts,
)

SAY = " so {a}. The answer is {a}."


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- pure pieces ------------------------------------------------------------
def test_pseudo_label_comes_from_n_votes_not_from_the_trained_group():
    """The group being trained agrees on 3; the N=8 votes sampled before say 5: the reward follows 5."""
    votes = ["5", "5", "5", "3", "5", "3", "5", None, "3", "3", "3", "3"]  # m=12 sampled answers
    label, share = pseudo_label(votes, 8)  # the first 8 only: 5 has 5 of 8
    assert (label, share) == ("5", 5 / 8)
    task = get_task("arith")
    group = [SAY.format(a=3), SAY.format(a=3), SAY.format(a=3), SAY.format(a=5)]
    reward = make_label_reward(task, no_answer=-0.5)
    got = reward(prompts=["p"] * 4, completions=group, label=[label] * 4, choices=[[]] * 4)
    assert got == [0.0, 0.0, 0.0, 1.0]  # the group's own majority (3) would have rewarded the first three
    # choice tasks: an option's text and its letter are the same answer
    reward = make_label_reward(get_task("commonsenseqa"), no_answer=-0.5)
    got = reward(
        prompts=["p"] * 3,
        completions=[" The answer is bank.", " The answer is (B).", " The answer is (A)."],
        label=["B"] * 3,  # labels are extracted answers: a choice task's are letters
        choices=[["river", "bank", "shop"]] * 3,
    )
    assert got == [1.0, 1.0, 0.0]


def test_no_answer_is_penalised():
    task = get_task("arith")
    assert label_rewards(["4", None, "5"], "4", no_answer=-0.5) == [1.0, -0.5, 0.0]
    assert label_rewards(["4", None], "4", no_answer=0.0) == [1.0, 0.0]
    reward = make_label_reward(task, no_answer=-0.5)
    # text after a stop string is a made-up next question: its answer must not count
    rambling = " I think\n\nQ: another?\nA: The answer is 4."
    got = reward(prompts=["p"] * 3, completions=[" hmm", rambling, SAY.format(a=4)], label=["4"] * 3)
    assert got == [-0.5, -0.5, 1.0]


def test_prompts_below_the_threshold_are_left_out():
    rows = [
        {"id": "a", "prompt": "A", "answers": ["1", "1", "1", "2"]},  # 0.75
        {"id": "b", "prompt": "B", "answers": ["1", "2", "3", "4"]},  # 0.25
        {"id": "c", "prompt": "C", "answers": ["7", "7", None, None]},  # 0.5: kept at >= 0.5
        {"id": "d", "prompt": "D", "answers": [None, None, None, None]},  # no label at all
    ]
    labelled = label_prompts(rows, votes=4)
    assert [(r["label"], r["share"]) for r in labelled] == [("1", 0.75), ("1", 0.25), ("7", 0.5), (None, 0.0)]
    kept, left_out = select_prompts(labelled, threshold=0.5)
    assert [r["id"] for r in kept] == ["a", "c"] and left_out == 2
    kept, left_out = select_prompts(labelled, threshold=0.0)
    assert [r["id"] for r in kept] == ["a", "b", "c"] and left_out == 1  # no label: nothing to reward


def test_auto_cap_is_above_the_95th_percentile(tiny_model_dir):
    from transformers import AutoTokenizer

    lengths = list(range(1, 101))  # p95 = 95
    assert auto_cap(lengths) > 95
    assert auto_cap([40] * 99 + [400]) < 400  # one runaway path does not set the cap
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [{"paths": ["Q: 1 + 2 A: 3" * k for k in range(1, 21)]}]
    longest = max(len(tok(p)["input_ids"]) for p in rows[0]["paths"])
    cfg = load_config(overrides=["train.method=grpo"]).train
    assert cfg.grpo_max_tokens == 0  # auto by default
    cap = completion_cap(cfg, tok, rows)
    assert longest * 0.95 < cap
    explicit = load_config(overrides=["train.method=grpo", "train.grpo_max_tokens=77"]).train
    assert completion_cap(explicit, tok, rows) == 77


def test_vllm_switch_builds_the_colocate_config(monkeypatch):
    from trl import GRPOConfig

    cfg = load_config(overrides=["train.method=grpo"]).train
    assert cfg.grpo_vllm == "auto" and cfg.grpo_generations >= 8
    monkeypatch.setattr(grpo_mod, "vllm_usable", lambda: True)  # a stand-in: vLLM importable and a GPU
    args = grpo_mod.grpo_args(cfg, cap=64)
    assert args["use_vllm"] is True and args["vllm_mode"] == "colocate"
    built = GRPOConfig(output_dir="/tmp/x", use_cpu=True, **args)
    assert built.use_vllm and built.vllm_mode == "colocate" and built.max_completion_length == 64
    off = load_config(overrides=["train.method=grpo", "train.grpo_vllm=off"]).train
    assert not grpo_mod.grpo_args(off, cap=64).get("use_vllm")
    monkeypatch.setattr(grpo_mod, "vllm_usable", lambda: False)  # CPU: in-process generation
    assert not grpo_mod.grpo_args(cfg, cap=64).get("use_vllm")
    on = load_config(overrides=["train.method=grpo", "train.grpo_vllm=on"]).train
    with pytest.raises(ConfigError, match="train.grpo_vllm"):
        grpo_mod.grpo_args(on, cap=64)


# -- training ---------------------------------------------------------------
COLOURS = ("red", "blue", "green", "gold")
TINY = [
    "train.grpo_generations=4",
    "train.grpo_votes=4",
    "train.grpo_max_tokens=8",
    "train.batch_size=1",
    "train.lr=0.01",
]


def _train(model_dir, rd, prompts, overrides, probe=None, task=None):
    from lmsi.models import load_model
    from lmsi.train import run_train

    rd.mkdir()
    (rd / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    cfg = load_config(overrides=["train.method=grpo", *overrides]).train
    model, tok = load_model(str(model_dir), "float32", False)
    run_train(model, tok, rd, cfg, seed=0, task=task or get_task("arith"), probe=probe)
    return _jsonl(rd / "grpo_steps.jsonl"), json.loads((rd / "grpo_prompts.json").read_text())


def _spy_rewards(monkeypatch, what: str) -> list:
    """The list that collects every `what` ("prompts" or "completions") the reward is called on."""
    seen = []

    def spy(task, no_answer):
        inner = make_label_reward(task, no_answer)

        def reward(prompts, completions, label, **kw):
            seen.extend({"prompts": prompts, "completions": completions}[what])
            return inner(prompts, completions, label, **kw)

        return reward

    monkeypatch.setattr(grpo_mod, "make_label_reward", spy)
    return seen


def test_training_skips_ambiguous_prompts_and_logs_each_step(answer_model_dir, tmp_path, monkeypatch, one_thread):
    seen = _spy_rewards(monkeypatch, "prompts")
    answers = {"red": ["1", "1", "1", "2"], "blue": ["1", "2", "3", "4"], "green": ["2", "2", "3", "2"], "gold": []}
    prompts = [{"id": c, "prompt": f"Q: pick {c} A:", "choices": [], "answers": a} for c, a in answers.items()]
    steps, info = _train(answer_model_dir, tmp_path / "g", prompts, TINY + ["train.grpo_threshold=0.5"])
    # gold had no stored vote: its 4 votes were sampled before training, so its label is whatever they said
    assert info["prompts"] == 4 and info["sampled_votes"] == 4
    assert "Q: pick blue A:" not in seen and {"Q: pick red A:", "Q: pick green A:"} <= set(seen)
    assert info["left_out"] == 4 - len(set(seen))
    assert len(steps) == len(set(seen))  # one prompt per step, one epoch
    # lmsi compare's training-set size counts the prompts trained on, not the build file's rows
    assert _train_items(tmp_path / "g/prompts.jsonl", tmp_path / "g" / grpo_mod.INFO) == len(set(seen))
    assert info["generated_tokens"] == round(sum(s["completion_length"] for s in steps) * 4)  # G=4, 1 prompt/step
    log = [h for h in _jsonl(tmp_path / "g/train_log.jsonl") if "reward" in h]
    for s, h in zip(steps, log):
        assert set(s) >= {"step", "reward", "all_equal", "completion_length"}
        assert s["all_equal"] == h["frac_reward_zero_std"] and 0 <= s["all_equal"] <= 1
        assert 0 < s["completion_length"] <= 8


def test_completions_end_at_the_tasks_stop_strings(answer_model_dir, tmp_path, monkeypatch, one_thread):
    """A trained completion ends where a sampled path would (the task's stop strings), instead of
    running on to the cap: the tail after a stop is not generated, so it is not trained on either."""
    seen = _spy_rewards(monkeypatch, "completions")
    task = get_task("arith")
    stop = " The answer is 2."  # one whole token of this tokenizer, which its random model says often
    monkeypatch.setattr(task, "stop", (stop,))
    prompts = [{"id": c, "prompt": f"Q: pick {c} A:", "choices": [], "answers": ["2"] * 4} for c in COLOURS]
    _train(answer_model_dir, tmp_path / "t", prompts, TINY + ["train.grpo_max_tokens=16"], task=task)
    stopped = [c for c in seen if stop in c]
    assert stopped and len(stopped) < len(seen)  # some said it, so the check below can fail
    assert all(c.endswith(stop) and c.count(stop) == 1 for c in stopped)


def test_agreement_stop_keeps_the_best_step(answer_model_dir, tmp_path, monkeypatch, one_thread):
    """Agreement on the fixed probe questions is measured every grpo_probe_every steps; when it
    does not rise by loop.min_gain, training stops there (label-free, like the round loop)."""
    calls = []

    def flat(model, tok, task, probe, cfg, cap, seed):
        calls.append(len(probe))
        return 0.5

    monkeypatch.setattr(grpo_mod, "sampled_agreement", flat)
    prompts = [{"id": c, "prompt": f"Q: pick {c} A:", "choices": [], "answers": ["1"] * 4} for c in COLOURS]
    probe = [{"prompt": "Q: pick red A:", "choices": []}] * 3
    steps, info = _train(
        answer_model_dir, tmp_path / "s", prompts, TINY + ["train.grpo_probe_every=2", "train.epochs=3"], probe
    )
    assert calls[:2] == [3, 3]  # before training, then after step 2
    assert len(steps) == 2 and info["stopped_at"] == 2 and "agreement" in steps[-1]
    # no step beat the model before training: that one is kept (LoRA merged at its start = the base)
    from safetensors.torch import load_file

    base, kept = (load_file(str(next(d.glob("*.safetensors")))) for d in (answer_model_dir, tmp_path / "s/model"))
    assert all((base[k] == kept[k]).all() for k in base)
