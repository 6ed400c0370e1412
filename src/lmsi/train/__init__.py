"""Fine-tune on the self-built set: LoRA (PEFT) by default, full optional.

One module per train.method, in TRL's shape: sft (train.jsonl), dpo (pairs.jsonl) and grpo
(prompts.jsonl, reward: match the pseudo-label of N votes), over the shared pieces in common. The pipeline calls
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
from .grpo import train_grpo
from .grpo_labels import grpo_probe, label_rewards, make_label_reward, pseudo_label
from .sft import add_token_weights, train_sft

# train.method -> trainer(model, tok, round_dir, cfg, seed[, task]) returning the merged model directory
TRAINERS = {"sft": train_sft, "dpo": train_dpo, "grpo": train_grpo}


def run_train(model, tok, round_dir: Path, cfg: TrainConfig, seed: int, task: Task | None = None, **grpo_extra) -> Path:
    """Train with cfg.method on the build stage's file; return the merged model directory.

    `task` extracts answers for grpo's reward; `grpo_extra` (probe, min_gain) is grpo's agreement
    stop. sft and dpo need neither."""
    from transformers import set_seed

    # LoRA's A matrices draw from the global RNG when the adapter is made (before the Trainer
    # seeds it), so without this two runs in one process, or a resumed run, start apart
    set_seed(seed)
    if cfg.method == "grpo":
        if task is None:
            raise ValueError("train.method=grpo needs the task to read answers from completions")
        return train_grpo(model, tok, round_dir, cfg, seed, task=task, **grpo_extra)
    return TRAINERS[cfg.method](model, tok, round_dir, cfg, seed)


__all__ = [
    "CHECKPOINT_FILES",
    "TRAINERS",
    "EmptyTrainingSet",
    "add_token_weights",
    "batch_shape",
    "common_args",
    "grpo_probe",
    "label_rewards",
    "latest_checkpoint",
    "lora_config",
    "make_label_reward",
    "pseudo_label",
    "read_rows",
    "resume_from",
    "run_train",
    "save_outputs",
    "train_dpo",
    "train_grpo",
    "train_sft",
]
