"""train.method=sft: TRL's SFTTrainer on train.jsonl, rows of (prompt, completion).

TRL tokenises prompt + completion, appends EOS and computes the loss on the completion tokens
only. An over-long row keeps its end (truncation_mode=keep_end): the answer is learned, the
leading exemplars are cut. train.weighting=confidence scales each row's tokens by its vote
share (LmsiSFTTrainer), normalised so unit weights give exactly the plain loss.
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


def weighted_token_loss(logits, labels, token_weight, num_items):
    """Causal-LM cross entropy with each next-token label scaled by its weight, summed and divided
    by the completion tokens of the whole accumulated batch (`num_items`), as transformers' own
    loss is: weights of 1 give exactly the unweighted loss."""
    import torch.nn.functional as F

    per_token = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels[:, 1:], reduction="none")
    return (per_token * token_weight[:, 1:].to(per_token.dtype)).sum() / num_items


def _trainer_class():
    from transformers import Trainer
    from trl import SFTTrainer

    class LmsiSFTTrainer(SFTTrainer):
        """SFTTrainer, with rows weighted by a `weight` column when there is one (the vote share).

        On a GPU the loss is TRL's fused LM head (only completion positions, no full logits). On a
        CPU that head scores every position and recomputes the logits in backward: 2.1x the time of
        the plain head and loss at Qwen2.5-0.5B's shape (measured), so the loss there comes from
        the full logits, as transformers' Trainer computes it."""

        def __init__(self, *a, weighted: bool = False, **kw):
            self.weighted = weighted
            super().__init__(*a, **kw)
            if weighted:
                collate = self.data_collator
                self.data_collator = lambda examples: add_token_weights(
                    collate([{k: v for k, v in e.items() if k != "weight"} for e in examples]), examples
                )

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if self.weighted and "weight" not in self._signature_columns:
                self._signature_columns.append("weight")

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            weight = inputs.pop("token_weight", None)
            if self.args.device.type == "cuda":
                if weight is None:
                    return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

                def weighted(**kw):  # TRL's loss is -sum(log_probs) / tokens: weigh each log-prob
                    out = model(**kw)
                    if kw.get("fused_lm_head"):
                        out.log_probs = out.log_probs * weight[:, 1:].to(out.log_probs.dtype)
                    return out

                return super().compute_loss(weighted, inputs, return_outputs, num_items_in_batch)
            if weight is None:
                return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
            labels = inputs["labels"]
            outputs = model(**{k: v for k, v in inputs.items() if k != "labels"}, use_cache=False)
            n = (labels[:, 1:] != -100).sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
            loss = weighted_token_loss(outputs.logits, labels, weight, n)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            return (loss, outputs) if return_outputs else loss

    return LmsiSFTTrainer


def train_sft(model, tok, round_dir: Path, cfg: TrainConfig, seed: int) -> Path:
    from trl import SFTConfig

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
    trainer = _trainer_class()(
        weighted=weighted,
        model=model,
        args=args,
        processing_class=tok,
        train_dataset=dataset(rows, ("prompt", "completion", "weight") if weighted else ("prompt", "completion")),
        callbacks=trainer_callbacks(),
        peft_config=lora_config(cfg) if cfg.adapter == "lora" else None,
    )
    trainer.train(resume_from_checkpoint=resume_from(round_dir))
    return save_outputs(trainer.model, tok, round_dir, cfg, trainer.state.log_history)
