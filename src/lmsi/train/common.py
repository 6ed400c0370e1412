"""What every training method shares: LoRA and Trainer arguments, checkpoints, outputs.

Kept apart from the methods so that sft, dpo and grpo each import it and never each other.
Every method writes `adapter/` (LoRA only), `model/` (merged, plain safetensors, so the next
stage or round loads it like any checkpoint) and `train_log.jsonl` (the loss/reward curve).
Every `train.save_steps` optimizer steps a checkpoint (weights, optimizer, scheduler, RNG
state) lands in `checkpoints/`; a killed stage resumes from the newest complete one and
reaches the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..config import TrainConfig
from ..io import InputError, read_jsonl, write_jsonl


class EmptyTrainingSet(InputError, RuntimeError):
    """The build stage's file (train.jsonl, pairs.jsonl or prompts.jsonl) holds no row.

    An InputError: the settings left nothing to learn from. Also a RuntimeError, which callers
    caught before this type existed."""


def read_rows(path: Path, hint: str) -> list[dict]:
    """The rows of a build file; EmptyTrainingSet (message: the file, then `hint`) when none."""
    rows = read_jsonl(path)
    if not rows:
        raise EmptyTrainingSet(f"{path} is empty: {hint}")
    return rows


# what DPO and GRPO say after the missing thing when their file is empty
PREFERENCE_HINT = (
    "lower build.threshold, sample more questions or paths (sample.m), or set build.reject_unextractable=true"
)


def dataset(rows: list[dict], columns: tuple[str, ...]):
    """The `datasets.Dataset` TRL's trainers take, holding `columns` of `rows`."""
    from datasets import Dataset

    return Dataset.from_dict({c: [r[c] for r in rows] for c in columns})


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


def trl_config(config_cls, cfg: TrainConfig, **lmsi_args):
    """`config_cls` (SFTConfig, DPOConfig, GRPOConfig) from lmsi's arguments, then train.args by
    their TRL names on top (config loading has refused a name set both ways, or unknown)."""
    return config_cls(**{**lmsi_args, **cfg.args})


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
