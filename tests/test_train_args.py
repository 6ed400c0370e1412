"""train.args: any TRL trainer argument by its TRL name, straight into SFTConfig / DPOConfig /
GRPOConfig; the same thing set both ways, or a name TRL does not know, is a ConfigError."""

from __future__ import annotations

import pytest

from lmsi.config import ConfigError, load_config
from lmsi.tasks import get_task


class _Built(Exception):
    pass


@pytest.mark.parametrize(
    "overrides,both",
    [
        (["train.lr=1e-4", "train.args.learning_rate=1e-5"], "train.lr and train.args.learning_rate"),
        (["train.epochs=3", "train.args.num_train_epochs=2"], "train.epochs and train.args.num_train_epochs"),
        (["train.max_length=256", "train.args.max_length=128"], "train.max_length and train.args.max_length"),
        (["train.method=dpo", "train.dpo_beta=0.5", "train.args.beta=0.2"], "train.dpo_beta and train.args.beta"),
        (["train.method=grpo", "train.grpo_kl=0.1", "train.args.beta=0.2"], "train.grpo_kl and train.args.beta"),
        (["train.args.seed=3"], "train.seed and train.args.seed"),
    ],
)
def test_the_same_setting_both_ways_is_an_error_naming_both_keys(overrides, both):
    with pytest.raises(ConfigError, match=f"{both} set the same thing"):
        load_config(overrides=overrides)


@pytest.mark.parametrize("method,config", [("sft", "SFTConfig"), ("dpo", "DPOConfig"), ("grpo", "GRPOConfig")])
def test_an_unknown_trl_argument_is_an_error_naming_it(method, config):
    with pytest.raises(ConfigError, match=f"'train.args.learning_rat'.*{config}.*learning_rate"):
        load_config(overrides=[f"train.method={method}", "train.args.learning_rat=0.1"])


def test_args_must_be_a_mapping():
    with pytest.raises(ConfigError, match="train.args"):
        load_config(overrides=["train.args=5"])


@pytest.mark.parametrize("method", ["sft", "dpo", "grpo"])
def test_args_reach_the_trl_config(method, tiny_model_dir, tmp_path, monkeypatch):
    from transformers import Trainer

    from lmsi.io import write_jsonl
    from lmsi.models import load_model
    from lmsi.train import run_train

    built = []

    def capture(self, *a, **kw):
        built.append(self.args)
        raise _Built

    monkeypatch.setattr(Trainer, "train", capture)
    task = get_task("arith")
    q = task.load("train", 1)[0]
    prompt = task.prompt(q.question, "fewshot_cot", 1)
    row = {"id": q.id, "confidence": 1.0, "choices": [], "prompt": prompt}
    write_jsonl(tmp_path / "train.jsonl", [{**row, "completion": " 1 + 1 = 2. The answer is 2."}])
    write_jsonl(tmp_path / "pairs.jsonl", [{**row, "chosen": " The answer is 2.", "rejected": " The answer is 3."}])
    write_jsonl(tmp_path / "prompts.jsonl", [{**row, "answers": ["2"] * 16}])  # grpo: its N votes, all agreeing
    cfg = load_config(
        overrides=[
            f"train.method={method}",
            "train.lr=1e-3",  # a curated key still counts beside args
            "train.args.lr_scheduler_type=cosine",
            "train.args.logging_steps=3",
            "train.args.num_train_epochs=2",  # train.epochs is at its default: args set it
        ]
    ).train
    with pytest.raises(_Built):
        run_train(*load_model(str(tiny_model_dir), "float32", False), tmp_path, cfg, seed=0, task=task)
    args = built[0]
    assert type(args).__name__ == {"sft": "SFTConfig", "dpo": "DPOConfig", "grpo": "GRPOConfig"}[method]
    assert args.lr_scheduler_type == "cosine" and args.logging_steps == 3 and args.num_train_epochs == 2
    assert args.learning_rate == 1e-3
