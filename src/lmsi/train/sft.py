"""train.method=sft: fine-tune on train.jsonl with transformers' Trainer.

The loss covers only the completion tokens; train.weighting=confidence scales each row's
tokens by its vote share (ConfidenceWeightedTrainer), normalised so unit weights give exactly
the plain loss.
"""

from __future__ import annotations

from pathlib import Path

from ..config import TrainConfig
from ..progress import trainer_callbacks
from .common import batch_shape, common_args, lora_config, read_rows, resume_from, save_outputs


def tokenize_rows(tok, rows: list[dict], max_length: int, weighted: bool = False) -> list[dict]:
    out = []
    for r in rows:
        p = tok(r["prompt"], add_special_tokens=False).input_ids
        c = tok(r["completion"], add_special_tokens=False).input_ids + [tok.eos_token_id]
        ids = (p + c)[-max_length:]  # keep the answer if a row is too long
        labels = ([-100] * len(p) + c)[-max_length:]
        out.append({"input_ids": ids, "labels": labels, **({"weight": float(r["confidence"])} if weighted else {})})
    return out


def _collate(pad_id: int):
    import torch

    def fn(batch):
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), pad_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        out = {"input_ids": ids, "labels": labels, "attention_mask": mask}
        if "weight" in batch[0]:
            out["weight"] = torch.tensor([b["weight"] for b in batch], dtype=torch.float32)
        return out

    return fn


def weighted_token_loss(logits, labels, weight, num_items=None):
    """Causal-LM cross entropy with each row's tokens scaled by `weight[row]`.

    Normalised like transformers' own loss: summed, then divided by the completion tokens in
    the whole accumulated batch (`num_items`), so weights of 1 give exactly the unweighted loss
    and the two runs differ only by the weights."""
    import torch.nn.functional as F

    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
    per_token = F.cross_entropy(shift_logits.transpose(1, 2), shift_labels, ignore_index=-100, reduction="none")
    total = (per_token.sum(dim=1) * weight.to(per_token.dtype)).sum()
    return total / (num_items if num_items is not None else (shift_labels != -100).sum().clamp(min=1))


def _weighted_trainer_class():
    from transformers import Trainer

    class ConfidenceWeightedTrainer(Trainer):
        """Trainer whose loss weights each row by the `weight` column (the vote share)."""

        loss_is_scaled_for_ga = True  # normalised over the accumulated batch, as the unweighted path is

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = dict(inputs)
            weight, labels = inputs.pop("weight"), inputs.pop("labels")
            outputs = model(**inputs)
            if num_items_in_batch is None:  # no global count: this micro-batch's tokens, times the accumulation
                num_items_in_batch = (labels[:, 1:] != -100).sum() * self.current_gradient_accumulation_steps
            loss = weighted_token_loss(outputs.logits, labels, weight, num_items_in_batch)
            if self.args.average_tokens_across_devices:  # num_items counts every device's tokens
                loss = loss * self.accelerator.num_processes
            return (loss, outputs) if return_outputs else loss

    return ConfidenceWeightedTrainer


def train_sft(model, tok, round_dir: Path, cfg: TrainConfig, seed: int) -> Path:
    from transformers import Trainer, TrainingArguments

    rows = read_rows(
        round_dir / "train.jsonl",
        "no question reached the confidence threshold; lower build.threshold or sample more questions",
    )
    model.train()
    if cfg.adapter == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(cfg))
    args = TrainingArguments(
        **batch_shape(cfg.batch_size), remove_unused_columns=False, **common_args(model, round_dir, cfg, seed)
    )
    weighted = cfg.weighting == "confidence"
    trainer_cls = _weighted_trainer_class() if weighted else Trainer
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=tokenize_rows(tok, rows, cfg.max_length, weighted),
        data_collator=_collate(tok.pad_token_id),
        callbacks=trainer_callbacks(),
    )
    trainer.train(resume_from_checkpoint=resume_from(round_dir))
    return save_outputs(model, tok, round_dir, cfg, trainer.state.log_history)
