"""Fine-tune on the self-built set: LoRA (PEFT) by default, full optional.

Loss covers only the completion tokens. Writes `adapter/` (LoRA only), `model/` (merged,
plain safetensors, so the next stage or round loads it like any checkpoint) and
`train_log.jsonl` (the loss curve). Every `train.save_steps` optimizer steps a checkpoint
(weights, optimizer, scheduler, RNG state) lands in `checkpoints/`; a killed stage resumes
from the newest complete one and reaches the same weights as an uninterrupted run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .config import TrainConfig
from .io import read_jsonl, write_jsonl


def tokenize_rows(tok, rows: list[dict], max_length: int) -> list[dict]:
    out = []
    for r in rows:
        p = tok(r["prompt"], add_special_tokens=False).input_ids
        c = tok(r["completion"], add_special_tokens=False).input_ids + [tok.eos_token_id]
        ids = (p + c)[-max_length:]  # keep the answer if a row is too long
        labels = ([-100] * len(p) + c)[-max_length:]
        out.append({"input_ids": ids, "labels": labels})
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
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return fn


CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth")


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest checkpoint with every file a resume needs; torn ones (a kill mid-save or
    mid-rotation) are removed so the trainer never picks them."""
    import json

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


def run_train(model, tok, round_dir: Path, cfg: TrainConfig, seed: int) -> Path:
    """Train on round_dir/train.jsonl; return the merged model directory."""
    import torch
    from transformers import Trainer, TrainingArguments

    rows = read_jsonl(round_dir / "train.jsonl")
    out_dir = round_dir / "model"
    if not rows:
        raise RuntimeError(f"{round_dir / 'train.jsonl'} is empty: no question reached the confidence threshold; "
                           "lower build.threshold or sample more questions")
    model.train()
    from transformers import set_seed

    set_seed(seed)  # LoRA's random init draws from the global RNG: seed it, or reruns differ
    if cfg.adapter == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, task_type="CAUSAL_LM",
            target_modules="all-linear",
        ))
    ckpt = round_dir / "checkpoints"
    args = TrainingArguments(
        output_dir=str(ckpt), per_device_train_batch_size=1, gradient_accumulation_steps=cfg.batch_size,
        num_train_epochs=cfg.epochs, learning_rate=cfg.lr, lr_scheduler_type="constant_with_warmup", warmup_steps=1,
        logging_steps=1, save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=2,
        report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        seed=seed, use_cpu=not torch.cuda.is_available(), disable_tqdm=False, remove_unused_columns=False,
        bf16=model.dtype == torch.bfloat16 and torch.cuda.is_available(),
    )
    # batch size 1 + accumulation: no padding compute, which dominates on CPU
    trainer = Trainer(model=model, args=args, train_dataset=tokenize_rows(tok, rows, cfg.max_length),
                      data_collator=_collate(tok.pad_token_id))
    resume = latest_checkpoint(ckpt) if ckpt.exists() else None
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    write_jsonl(round_dir / "train_log.jsonl", [h for h in trainer.state.log_history if "loss" in h or "train_loss" in h])
    if cfg.adapter == "lora":
        model.save_pretrained(round_dir / "adapter")
        model = model.merge_and_unload()
    model.eval()
    tmp = round_dir / "model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    shutil.rmtree(ckpt, ignore_errors=True)
    return out_dir
