"""Fine-tune on the self-built set: LoRA (PEFT) by default, full optional.

One module per train.method, in TRL's shape: sft (train.jsonl), dpo (pairs.jsonl) and grpo
(prompts.jsonl, majority-vote reward), over the shared pieces in common. The pipeline calls
run_train, which seeds and dispatches through TRAINERS.
"""

from __future__ import annotations

from pathlib import Path

from ..config import TrainConfig
from ..tasks import Task
from .common import (
    CHECKPOINT_FILES,
    EmptyTrainingSet,
    batch_shape,
    common_args,
    latest_checkpoint,
    lora_config,
    read_rows,
    resume_from,
    save_outputs,
)
from .dpo import train_dpo
from .grpo import group_rewards, majority_rewards, make_majority_reward, train_grpo
from .sft import add_token_weights, train_sft

# train.method -> trainer(model, tok, round_dir, cfg, seed[, task]) returning the merged model directory
TRAINERS = {"sft": train_sft, "dpo": train_dpo, "grpo": train_grpo}


def run_train(model, tok, round_dir: Path, cfg: TrainConfig, seed: int, task: Task | None = None) -> Path:
    """Train with cfg.method on the build stage's file; return the merged model directory.

    `task` extracts answers for grpo's reward; sft and dpo do not need it."""
    from transformers import set_seed

    # LoRA's A matrices draw from the global RNG when the adapter is made (before the Trainer
    # seeds it), so without this two runs in one process, or a resumed run, start apart
    set_seed(seed)
    if cfg.method == "grpo":
        if task is None:
            raise ValueError("train.method=grpo needs the task to read answers from completions")
        return train_grpo(model, tok, round_dir, cfg, seed, task=task)
    return TRAINERS[cfg.method](model, tok, round_dir, cfg, seed)


__all__ = [
    "CHECKPOINT_FILES",
    "TRAINERS",
    "EmptyTrainingSet",
    "add_token_weights",
    "batch_shape",
    "common_args",
    "group_rewards",
    "latest_checkpoint",
    "lora_config",
    "majority_rewards",
    "make_majority_reward",
    "read_rows",
    "resume_from",
    "run_train",
    "save_outputs",
    "train_dpo",
    "train_grpo",
    "train_sft",
]
