"""Fine-tune on the self-built set: LoRA (PEFT) by default, full optional.

train.method=sft (here) trains on train.jsonl; loss covers only the completion tokens, and
train.weighting=confidence scales each row's tokens by its vote share. dpo and grpo live in
preference.py. Every method writes `adapter/` (LoRA only), `model/` (merged, plain
safetensors, so the next stage or round loads it like any checkpoint) and `train_log.jsonl`
(the loss/reward curve). Every `train.save_steps` optimizer steps a checkpoint (weights,
optimizer, scheduler, RNG state) lands in `checkpoints/`; a killed stage resumes from the
newest complete one and reaches the same weights as an uninterrupted run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .config import TrainConfig
from .io import read_jsonl, write_jsonl


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


def lora_config(cfg: TrainConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        task_type="CAUSAL_LM",
        target_modules="all-linear",
    )


def common_args(model, round_dir: Path, cfg: TrainConfig, seed: int) -> dict:
    """TrainingArguments shared by every method (also fields of TRL's DPOConfig and GRPOConfig)."""
    import torch

    return dict(
        output_dir=str(round_dir / "checkpoints"),
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.lr,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=1,
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        seed=seed,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
        bf16=model.dtype == torch.bfloat16 and torch.cuda.is_available(),
        gradient_checkpointing=False,  # TRL's configs turn it on; off as in SFT, so methods compare at equal compute
    )


def batch_shape(batch_size: int) -> dict:
    """One optimizer step per `batch_size` items. CPU: micro-batches of 1 (no padding compute,
    which dominates there). GPU: the whole batch at once (16 sequential micro-batches ran
    2.5 s/step on an H100, launch-bound)."""
    import torch

    per_device = batch_size if torch.cuda.is_available() else 1
    return dict(per_device_train_batch_size=per_device, gradient_accumulation_steps=batch_size // per_device)


CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth")


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest checkpoint with every file a resume needs; torn ones (a kill mid-save or
    mid-rotation) are removed so the trainer never picks them."""
    import json

    if not ckpt_dir.exists():
        return None
    complete = []
    for d in sorted(ckpt_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])):
        ok = all((d / f).exists() for f in CHECKPOINT_FILES) and any(d.glob("*.safetensors"))
        try:
            ok = ok and json.loads((d / "trainer_state.json").read_text())["global_step"] == int(d.name.split("-")[-1])
        except (ValueError, KeyError):
            ok = False
        if ok:
            complete.append(d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    return complete[-1] if complete else None


def resume_from(round_dir: Path) -> str | None:
    last = latest_checkpoint(round_dir / "checkpoints")
    return str(last) if last else None


def save_outputs(model, tok, round_dir: Path, cfg: TrainConfig, log_history: list[dict]) -> Path:
    """train_log.jsonl, adapter/ (LoRA), and the merged model/ written atomically (via model.tmp)."""
    keep = ("loss", "train_loss", "reward")
    write_jsonl(round_dir / "train_log.jsonl", [h for h in log_history if any(k in h for k in keep)])
    if cfg.adapter == "lora":
        model.save_pretrained(round_dir / "adapter")
        model = model.merge_and_unload()
    model.eval()
    out_dir = round_dir / "model"
    tmp = round_dir / "model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    shutil.rmtree(round_dir / "checkpoints", ignore_errors=True)
    return out_dir


def run_train(model, tok, round_dir: Path, cfg: TrainConfig, seed: int, task=None) -> Path:
    """Train with cfg.method on the build stage's file; return the merged model directory.

    `task` extracts answers for grpo's reward; sft and dpo do not need it."""
    from transformers import set_seed

    # LoRA's A matrices draw from the global RNG when the adapter is made (before the Trainer
    # seeds it), so without this two runs in one process, or a resumed run, start apart
    set_seed(seed)
    if cfg.method != "sft":
        from .preference import train_dpo, train_grpo

        if cfg.method == "grpo" and task is None:
            raise ValueError("train.method=grpo needs the task to read answers from completions")
        train = {"dpo": train_dpo, "grpo": lambda *a: train_grpo(*a, task=task)}[cfg.method]
        return train(model, tok, round_dir, cfg, seed)
    return _train_sft(model, tok, round_dir, cfg, seed)


def _train_sft(model, tok, round_dir: Path, cfg: TrainConfig, seed: int) -> Path:
    from transformers import Trainer, TrainingArguments

    rows = read_jsonl(round_dir / "train.jsonl")
    if not rows:
        raise RuntimeError(
            f"{round_dir / 'train.jsonl'} is empty: no question reached the confidence threshold; "
            "lower build.threshold or sample more questions"
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
    )
    trainer.train(resume_from_checkpoint=resume_from(round_dir))
    return save_outputs(model, tok, round_dir, cfg, trainer.state.log_history)
