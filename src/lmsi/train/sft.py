"""train.method=sft: TRL's SFTTrainer on train.jsonl, rows of (prompt, completion).

TRL tokenises prompt + completion, appends EOS and computes the loss on the completion tokens
only. An over-long row keeps its end (truncation_mode=keep_end): the answer is learned, the
leading exemplars are cut. train.weighting=confidence scales each row's tokens by its vote
share (ConfidenceWeightedSFTTrainer), normalised so unit weights give exactly the plain loss.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ..config import TrainConfig
from ..progress import trainer_callbacks
from .common import batch_shape, common_args, dataset, lora_config, read_rows, resume_from, save_outputs, trl_config


def add_token_weights(batch: dict, examples: list[dict]) -> dict:
    """`token_weight` beside `labels`: each token carries its row's `weight`, padded with 0, for
    padded batches (one row per line) and padding-free ones (all rows in one line) alike."""
    import torch
    import torch.nn.functional as F

    rows = [torch.full((len(e["input_ids"]),), float(e["weight"])) for e in examples]
    if "attention_mask" not in batch:  # padding-free: the rows were concatenated
        rows = [torch.cat(rows)]
    width = batch["labels"].shape[1]
    batch["token_weight"] = torch.stack([F.pad(r, (0, width - len(r))) for r in rows])
    return batch


def _weighted_trainer_class():
    from trl import SFTTrainer

    class ConfidenceWeightedSFTTrainer(SFTTrainer):
        """SFTTrainer whose loss weights each row's tokens by the `weight` column (the vote share).

        SFTTrainer's loss is -sum(log_probs) / tokens; scaling each token's log-prob by its weight
        before that sum makes it the weighted loss with TRL's own normalisation and metrics."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            collate = self.data_collator
            self.data_collator = lambda examples: add_token_weights(
                collate([{k: v for k, v in e.items() if k != "weight"} for e in examples]), examples
            )

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if "weight" not in self._signature_columns:
                self._signature_columns.append("weight")

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            weight = inputs.pop("token_weight")[:, 1:]  # the weight of each next-token label

            def weighted(**kw):
                out = model(**kw)
                if kw.get("fused_lm_head"):
                    out.log_probs = out.log_probs * weight.to(out.log_probs.dtype)
                return out

            return super().compute_loss(weighted, inputs, return_outputs, num_items_in_batch)

    return ConfidenceWeightedSFTTrainer


def train_sft(model, tok, round_dir: Path, cfg: TrainConfig, seed: int) -> Path:
    from trl import SFTConfig, SFTTrainer

    rows = read_rows(
        round_dir / "train.jsonl",
        "no question reached the confidence threshold; lower build.threshold or sample more questions",
    )
    weighted = cfg.weighting == "confidence"
    if weighted:
        rows = [{**r, "weight": float(r["confidence"])} for r in rows]
    model.train()
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "The `'keep_end'` truncation mode", FutureWarning
        )  # deprecated, removed in trl 2
        args = trl_config(
            SFTConfig,
            cfg,
            **batch_shape(cfg.batch_size),
            max_length=cfg.max_length,
            truncation_mode="keep_end",  # keep the answer at the end of an over-long row
            **common_args(model, round_dir, cfg, seed),
        )
    trainer = (_weighted_trainer_class() if weighted else SFTTrainer)(
        model=model,
        args=args,
        processing_class=tok,
        train_dataset=dataset(rows, ("prompt", "completion", "weight") if weighted else ("prompt", "completion")),
        callbacks=trainer_callbacks(),
        peft_config=lora_config(cfg) if cfg.adapter == "lora" else None,
    )
    trainer.train(resume_from_checkpoint=resume_from(round_dir))
    return save_outputs(trainer.model, tok, round_dir, cfg, trainer.state.log_history)
