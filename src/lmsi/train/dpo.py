"""train.method=dpo: TRL's DPOTrainer on pairs.jsonl (build stage).

Each pair prefers a majority-answer path over a minority-answer path of the same question, so
the vote's minority is used as a negative instead of thrown away. With LoRA the reference
model is the base with adapters off; with a full fine-tune TRL copies the base.
"""

from __future__ import annotations

from pathlib import Path

from ..config import TrainConfig
from ..progress import trainer_callbacks
from .common import (
    PREFERENCE_HINT,
    batch_shape,
    common_args,
    dataset,
    lora_config,
    read_rows,
    resume_from,
    save_outputs,
    trl_config,
)


def train_dpo(model, tok, round_dir: Path, cfg: TrainConfig, seed: int) -> Path:
    from trl import DPOConfig, DPOTrainer

    pairs = read_rows(
        round_dir / "pairs.jsonl", f"no confident question had a minority path to reject; {PREFERENCE_HINT}"
    )
    model.train()
    args = trl_config(
        DPOConfig,
        cfg,
        **batch_shape(cfg.batch_size),  # as SFT: one optimizer step per batch_size items
        beta=cfg.dpo_beta,
        max_length=cfg.max_length,
        **common_args(model, round_dir, cfg, seed),
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        processing_class=tok,
        train_dataset=dataset(pairs, ("prompt", "chosen", "rejected")),
        callbacks=trainer_callbacks(),
        peft_config=lora_config(cfg)
        if cfg.adapter == "lora"
        else None,  # None + full: TRL copies the base as reference
    )
    trainer.train(resume_from_checkpoint=resume_from(round_dir))
    return save_outputs(trainer.model, tok, round_dir, cfg, trainer.state.log_history)
