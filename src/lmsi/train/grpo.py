"""train.method=grpo: TRL's GRPOTrainer on prompts.jsonl, rewarded for matching a pseudo-label.

Before training: the completion cap (auto: from the sampled paths' lengths), the votes each
prompt lacks (sampled once), the pseudo-labels and the prompts left out (grpo_labels.py). During
training, every step's reward, all-equal-group share (TRL's frac_reward_zero_std: groups whose
completions all got the same reward carry no advantage) and mean completion length go to
`grpo_steps.jsonl` and the trainer's report_to; every `train.grpo_probe_every` steps the
label-free agreement on the eval questions joins them, and training stops, keeping the best
model, once it fails to rise by loop.min_gain over the best so far (the round loop's rule).
`grpo_prompts.json` records what was decided.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from ..config import ConfigError, TrainConfig
from ..io import append_jsonl, read_jsonl, write_json
from ..progress import trainer_callbacks
from ..stats import agreement_stalled
from ..tasks import Task
from .common import (
    PREFERENCE_HINT,
    EmptyTrainingSet,
    common_args,
    dataset,
    lora_config,
    read_rows,
    resume_from,
    save_outputs,
    trl_config,
)
from .grpo_labels import (
    completion_cap,
    label_prompts,
    make_label_reward,
    sampled_agreement,
    select_prompts,
    stop_criteria,
    top_up_votes,
)

STEPS, INFO = "grpo_steps.jsonl", "grpo_prompts.json"


def vllm_usable() -> bool:
    import torch

    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def grpo_args(cfg: TrainConfig, cap: int, stop: tuple[str, ...] = ()) -> dict:
    """GRPOConfig fields of this method (common_args adds the shared ones). `stop`: the task's stop
    strings, where a completion ends as a sampled path does (a few-shot prompt otherwise runs on
    into an invented next question until the cap, and that tail is trained on too)."""
    g = cfg.grpo_generations
    args = dict(
        # one prompt's whole group per forward pass; batch_size prompts per optimizer step, like SFT's rows
        per_device_train_batch_size=g,
        gradient_accumulation_steps=cfg.batch_size,
        num_generations=g,
        max_completion_length=cap,
        temperature=cfg.grpo_temperature,
        beta=cfg.grpo_kl,
        remove_unused_columns=False,
    )
    usable = vllm_usable()
    if cfg.grpo_vllm == "on" and not usable:
        raise ConfigError("config key 'train.grpo_vllm' is 'on' but vLLM does not import or CUDA is down; use auto")
    if cfg.grpo_vllm == "on" or (cfg.grpo_vllm == "auto" and usable):
        args.update(use_vllm=True, vllm_mode="colocate")
    if stop and args.get("use_vllm"):  # in-process generation stops through ProbedGRPOTrainer instead
        args["generation_kwargs"] = {"stop": list(stop)}
    return args


def _trainer_class():
    from trl import GRPOTrainer

    class ProbedGRPOTrainer(GRPOTrainer):
        """GRPOTrainer whose step logs gain the probe's agreement (so report_to sees it) and land
        in grpo_steps.jsonl; a stalled agreement stops training and restores the best weights."""

        probe_hook = None
        last_log = None

        def __init__(self, *args, stop: tuple[str, ...] = (), **kwargs):
            super().__init__(*args, **kwargs)
            # TRL's in-process generate takes no stopping criteria: hand ours to every call
            plain, tok = self.model.generate, self.processing_class

            def generate(*a, **k):  # the probe's own calls bring their criteria
                k.setdefault("stopping_criteria", stop_criteria(tok, stop, k["input_ids"].shape[1]))
                return plain(*a, **k)

            self.model.generate = generate

        def log(self, logs: dict, start_time: float | None = None) -> None:
            step_log = "loss" in logs and self.model.training
            if step_log and self.probe_hook:
                self.probe_hook.measure(self, logs)
            super().log(logs, start_time)  # adds TRL's reward metrics into `logs`
            if step_log and "reward" in logs:
                row = {
                    "step": self.state.global_step,
                    "reward": logs["reward"],
                    "all_equal": logs.get("frac_reward_zero_std"),
                    "completion_length": logs.get("completions/mean_length"),
                }
                if "agreement" in logs:
                    row["agreement"] = logs["agreement"]
                now = time.time()  # wall seconds since the previous step row (generation, probe, update): for sizing
                row["seconds"] = round(now - (self.last_log or self.train_start), 1)
                self.last_log = now
                append_jsonl(Path(self.args.output_dir).parent / STEPS, [row])

    return ProbedGRPOTrainer


class AgreementProbe:
    """Agreement on the probe prompts every `every` steps; keeps the best weights in memory
    (trainable ones only: the LoRA adapter, or all of a fully tuned model)."""

    def __init__(self, tok, task, probe, cfg, cap, seed, min_gain):
        self.tok, self.task, self.probe, self.cfg, self.cap, self.seed = tok, task, probe, cfg, cap, seed
        self.min_gain, self.every = min_gain, cfg.grpo_probe_every
        self.best, self.best_step, self.best_state, self.stopped_at = None, 0, None, None

    def _agreement(self, model) -> float:
        return sampled_agreement(model, self.tok, self.task, self.probe, self.cfg, self.cap, self.seed)

    def _keep(self, model, agreement: float, step: int) -> None:
        self.best, self.best_step = agreement, step
        self.best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def start(self, model) -> None:
        self.base = self._agreement(model)
        self._keep(model, self.base, 0)

    def measure(self, trainer, logs: dict) -> None:
        step = trainer.state.global_step
        if step % self.every:
            return
        now = self._agreement(trainer.model)
        logs["agreement"] = now
        if not agreement_stalled(self.best, now, self.min_gain):
            self._keep(trainer.model, now, step)
            return
        self.stopped_at = step
        trainer.control.should_training_stop = True
        params = dict(trainer.model.named_parameters())
        for n, v in self.best_state.items():
            params[n].data.copy_(v)


def train_grpo(
    model, tok, round_dir: Path, cfg: TrainConfig, seed: int, task: Task, probe=None, min_gain: float = 0.01
) -> Path:
    """`probe`: rows {prompt, choices} of the eval questions (their text only) for the agreement stop."""
    from trl import GRPOConfig

    rows = read_rows(round_dir / "prompts.jsonl", f"no question to prompt with; {PREFERENCE_HINT}")
    cap = completion_cap(cfg, tok, rows)
    t = time.time()
    sampled = top_up_votes(model, tok, task, rows, cfg, cap, seed)
    kept, left_out = select_prompts(label_prompts(rows, cfg.grpo_votes), cfg.grpo_threshold)
    info = {"prompts": len(rows), "left_out": left_out, "threshold": cfg.grpo_threshold, "votes": cfg.grpo_votes}
    info.update(
        sampled_votes=sampled,
        vote_seconds=round(time.time() - t, 1),
        max_tokens=cap,
        cap_rule="set" if cfg.grpo_max_tokens else "auto",
    )
    print(f"grpo: {len(kept)} of {len(rows)} prompts trained on ({left_out} below share {cfg.grpo_threshold})")
    if not kept:
        raise EmptyTrainingSet(f"no prompt's pseudo-label reached train.grpo_threshold={cfg.grpo_threshold}: {info}")
    model.train()
    args = trl_config(GRPOConfig, cfg, **grpo_args(cfg, cap, task.stop), **common_args(model, round_dir, cfg, seed))
    trainer = _trainer_class()(
        model=model,
        reward_funcs=[make_label_reward(task, cfg.grpo_no_answer)],
        args=args,
        processing_class=tok,
        train_dataset=dataset(kept, ("prompt", "id", "choices", "label")),
        callbacks=trainer_callbacks(),
        peft_config=lora_config(cfg) if cfg.adapter == "lora" else None,
        stop=task.stop,
    )
    resume = resume_from(round_dir)
    if resume is None:
        (round_dir / STEPS).unlink(missing_ok=True)
    hook = None
    if probe and cfg.grpo_probe_every:
        hook = trainer.probe_hook = AgreementProbe(tok, task, list(probe), cfg, cap, seed, min_gain)
        hook.start(trainer.model)
    trainer.train_start = time.time()
    trainer.train(resume_from_checkpoint=resume)
    if hook:
        info.update(agreement_before=hook.base, best_agreement=hook.best, best_step=hook.best_step)
        info.update(stopped_at=hook.stopped_at, min_gain=min_gain)
    steps = read_jsonl(round_dir / STEPS) if (round_dir / STEPS).exists() else []
    per_step = cfg.grpo_generations * cfg.batch_size  # completions generated per optimizer step
    info["generated_tokens"] = round(sum(s["completion_length"] or 0 for s in steps) * per_step)
    write_json(round_dir / INFO, info)
    return save_outputs(trainer.model, tok, round_dir, cfg, trainer.state.log_history)
