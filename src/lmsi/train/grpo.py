"""train.method=grpo: TRL's GRPOTrainer on prompts.jsonl with a self-consistency reward.

`train.grpo_generations` completions are sampled per prompt; a completion earns 1 when its
answer equals the majority answer of its own group, else 0. No label and no stored vote is
read: the reward is computed on the fly from the group (pure functions first, then the batch
callable TRL calls).
"""

from __future__ import annotations

from pathlib import Path

from ..backends.base import cut_at_stop
from ..config import TrainConfig
from ..progress import trainer_callbacks
from ..tasks import Task
from ..vote import majority
from .common import PREFERENCE_HINT, common_args, dataset, lora_config, read_rows, resume_from, save_outputs, trl_config


def _answer(task: Task, completion: str, choices=()) -> str | None:
    # TRL generates to the token cap: without the cut, a model that invents a next
    # 'Q: ... A: The answer is 9.' would be read as 9
    return task.extract(cut_at_stop(completion, task.stop)[0], choices=tuple(choices or ()))


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


def train_grpo(model, tok, round_dir: Path, cfg: TrainConfig, seed: int, task: Task) -> Path:
    from trl import GRPOConfig, GRPOTrainer

    prompts = read_rows(round_dir / "prompts.jsonl", f"no question to prompt with; {PREFERENCE_HINT}")
    model.train()
    g = cfg.grpo_generations
    args = trl_config(
        GRPOConfig,
        cfg,
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
        train_dataset=dataset(prompts, ("prompt", "id", "choices")),
        callbacks=trainer_callbacks(),
        peft_config=lora_config(cfg) if cfg.adapter == "lora" else None,
    )
    trainer.train(resume_from_checkpoint=resume_from(round_dir))
    return save_outputs(trainer.model, tok, round_dir, cfg, trainer.state.log_history)
