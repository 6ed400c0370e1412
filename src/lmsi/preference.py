"""Beyond the paper: learn from the vote itself with TRL's DPO and GRPO trainers.

  dpo   pairs.jsonl (build stage): prefer a majority-answer path over a minority-answer path
        of the same question. With LoRA the reference model is the base with adapters off.
  grpo  prompts.jsonl: sample `train.grpo_generations` completions per prompt; a completion
        earns 1 when its answer equals the majority answer of its own group, else 0. No label
        and no stored vote is read: the reward is self-consistency computed on the fly.

Both write the same files as SFT (train.save_outputs), so evaluation runs unchanged.
"""

from __future__ import annotations

from pathlib import Path

from .config import TrainConfig
from .io import read_jsonl
from .tasks import Task
from .train import batch_shape, common_args, lora_config, resume_from, save_outputs
from .vote import majority


# ---------------------------------------------------------------------------
# GRPO reward: pure functions first, then the batch callable TRL calls.
def cut_at_stop(completion: str, stop: tuple[str, ...]) -> str:
    """The completion up to the first stop string. Generation in TRL runs to the token cap, so
    without this a model that invents a next 'Q: ... A: The answer is 9.' would be read as 9."""
    ends = [i for i in (completion.find(s) for s in stop) if i != -1]
    return completion[: min(ends)] if ends else completion


def _answer(task: Task, completion: str, choices=()) -> str | None:
    return task.extract(cut_at_stop(completion, task.stop), choices=tuple(choices or ()))


def majority_rewards(answers: list[str | None]) -> list[float]:
    """Rewards for one prompt's group: 1.0 where the answer equals the group's majority
    (vote.majority: abstentions never win, ties go to the first seen), else 0.0."""
    top, _, _ = majority(answers)
    return [1.0 if top is not None and a == top else 0.0 for a in answers]


def group_rewards(task: Task, completions: list[str], choices: tuple[str, ...] = ()) -> list[float]:
    """Extract each completion's answer (cut at the task's stops), then majority_rewards."""
    return majority_rewards([_answer(task, c, choices) for c in completions])


def make_majority_reward(task: Task):
    """The reward function GRPOTrainer calls on a batch of (prompt, completion) pairs.

    A batch holds whole groups (the trainer repeats each prompt num_generations times), but
    not necessarily in order, so completions are grouped by the row's `id` column. Under
    several processes a group can be split across them; its answers are gathered first so the
    majority is always over the full group."""

    def majority_reward(prompts: list[str], completions: list[str], id: list[str], choices=None, **_) -> list[float]:
        choices = choices or [()] * len(completions)
        answers = [_answer(task, c, ch) for c, ch in zip(completions, choices)]
        groups: dict[str, list[str | None]] = {}
        for qid, a in zip(id, answers):
            groups.setdefault(qid, []).append(a)
        groups = _gather_groups(groups)
        tops = {qid: majority(group)[0] for qid, group in groups.items()}
        return [1.0 if tops[qid] is not None and a == tops[qid] else 0.0 for qid, a in zip(id, answers)]

    return majority_reward


def _gather_groups(groups: dict[str, list]) -> dict[str, list]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return groups
    everyone: list = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, groups)
    merged: dict[str, list] = {}
    for g in everyone:
        for qid, answers in g.items():
            merged.setdefault(qid, []).extend(answers)
    return merged


# ---------------------------------------------------------------------------
def _dataset(rows: list[dict], columns: tuple[str, ...]):
    from datasets import Dataset

    return Dataset.from_dict({c: [r[c] for r in rows] for c in columns})


def _rows(path: Path, what: str) -> list[dict]:
    rows = read_jsonl(path)
    if not rows:
        raise RuntimeError(
            f"{path} is empty: no {what}; lower build.threshold, sample more questions or paths "
            "(sample.m), or set build.reject_unextractable=true"
        )
    return rows


def train_dpo(model, tok, round_dir: Path, cfg: TrainConfig, seed: int) -> Path:
    from trl import DPOConfig, DPOTrainer

    pairs = _rows(round_dir / "pairs.jsonl", "confident question had a minority path to reject")
    model.train()
    args = DPOConfig(
        **batch_shape(cfg.batch_size),  # as SFT: one optimizer step per batch_size items
        beta=cfg.dpo_beta,
        max_length=cfg.max_length,
        **common_args(model, round_dir, cfg, seed),
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        processing_class=tok,
        train_dataset=_dataset(pairs, ("prompt", "chosen", "rejected")),
        peft_config=lora_config(cfg)
        if cfg.adapter == "lora"
        else None,  # None + full: TRL copies the base as reference
    )
    trainer.train(resume_from_checkpoint=resume_from(round_dir))
    return save_outputs(trainer.model, tok, round_dir, cfg, trainer.state.log_history)


def train_grpo(model, tok, round_dir: Path, cfg: TrainConfig, seed: int, task: Task) -> Path:
    from trl import GRPOConfig, GRPOTrainer

    prompts = _rows(round_dir / "prompts.jsonl", "question to prompt with")
    model.train()
    g = cfg.grpo_generations
    args = GRPOConfig(
        # one prompt's whole group per forward pass; batch_size prompts per optimizer step, like SFT's rows
        per_device_train_batch_size=g,
        gradient_accumulation_steps=cfg.batch_size,
        num_generations=g,
        max_completion_length=cfg.grpo_max_tokens,
        temperature=cfg.grpo_temperature,
        beta=cfg.grpo_kl,
        remove_unused_columns=False,
        **common_args(model, round_dir, cfg, seed),
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[make_majority_reward(task)],
        args=args,
        processing_class=tok,
        train_dataset=_dataset(prompts, ("prompt", "id", "choices")),
        peft_config=lora_config(cfg) if cfg.adapter == "lora" else None,
    )
    trainer.train(resume_from_checkpoint=resume_from(round_dir))
    return save_outputs(trainer.model, tok, round_dir, cfg, trainer.state.log_history)
