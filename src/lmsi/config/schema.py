"""The run configuration's schema: one dataclass per stage with the paper's defaults.

Every field's help text and bounds live in its metadata, so `lmsi config` can print a
documented default file and loading.py can check values against them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..tasks.base import ANSWER_TYPES, FORMATS

EVAL_MODES = ("greedy_cot", "sc", "direct", "zeroshot_cot")
TRACKERS = ("none", "tensorboard", "mlflow", "trackio", "wandb")


class ConfigError(ValueError):
    pass


def opt(default, help: str, **kw):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class DataConfig:
    task: str = opt(
        "arith",
        "task name (lmsi tasks), file:PATH (jsonl/json/csv/tsv or a saved datasets folder) or hf:DATASET_ID[:CONFIG]",
    )
    split: str = opt("auto", "split used WITHOUT labels for self-training (auto: the task's unlabeled split)")
    limit: int = opt(16, "number of unlabeled questions (0 = all)", ge=0)
    question_field: str = opt("question", "question field for file:/hf: tasks")
    answer_field: str = opt("answer", "gold field for file:/hf: tasks (diagnostics/eval only)")
    choices_field: str = opt("choices", "options field for file:/hf: tasks with answer_type choice")
    answer_type: str = opt("number", "file:/hf: tasks: how answers are read and compared", choices=list(ANSWER_TYPES))
    overlap: str = opt(
        "refuse",
        "when unlabeled questions overlap the eval set (same split, or near-duplicate text): refuse the run, drop them from the pool, or allow them (the report lists them)",
        choices=["refuse", "drop", "allow"],
    )


@dataclass
class SampleConfig:
    m: int = opt(6, "reasoning paths per question (paper: 32; smaller default fits a CPU)", ge=1)
    temperature: float = opt(0.7, "sampling temperature (paper: 0.7)", ge=0.0)
    top_p: float = opt(1.0, "nucleus sampling mass", gt=0.0, le=1.0)
    max_new_tokens: int = opt(80, "cap on tokens per path", ge=1)
    shots: int = opt(3, "few-shot CoT exemplars in the sampling prompt", ge=0)
    early_stop: bool = opt(
        False,
        "draw each question's paths in waves and stop once the undrawn ones cannot change the majority answer "
        "or whether it passes build.threshold (sc eval: the answer); off where every path is read: see docs/early-stopping.md",
    )
    wave: int = opt(4, "early_stop: paths per wave (one sampler call per question and wave)", ge=1)
    batch_rows: int = opt(128, "sequences decoded together (prompts x paths); bigger = faster GEMMs, more memory", ge=1)
    gpu_memory: float = opt(0.5, "backend=vllm: GPU memory share vLLM may take (training needs the rest)", gt=0, le=1)


@dataclass
class BuildConfig:
    threshold: float = opt(0.5, "keep questions whose majority vote share >= this", ge=0.0, le=1.0)
    vote: str = opt(
        "majority",
        "majority: each path one vote (the paper); weighted: each path counts exp(mean token "
        "log-prob) under the model that sampled it (backend=hf; every path is scored once, resumably)",
        choices=["majority", "weighted"],
    )
    max_paths: int = opt(2, "majority paths kept per question", ge=1)
    formats: dict = opt(
        {f: 1.0 for f in FORMATS},
        "weight of each training format (0 drops it): " + ", ".join(FORMATS),
    )
    max_rows: int = opt(16, "cap on training rows (0 = no cap)", ge=0)
    shots: int = opt(2, "exemplars in few-shot training rows (fewer = cheaper fine-tuning)", ge=0)
    pairs_per_question: int = opt(2, "dpo: preference pairs (majority, minority path) per confident question", ge=1)
    reject_unextractable: bool = opt(False, "dpo: paths that state no answer may also be the rejected side of a pair")


@dataclass
class TrainConfig:
    method: str = opt(
        "sft",
        "training objective: sft = fine-tune on majority paths (the paper); dpo = prefer majority over "
        "minority paths of the same question; grpo = RL with reward 1 for agreeing with the question's "
        "pseudo-label (the majority of train.grpo_votes sampled answers)",
        choices=["sft", "dpo", "grpo"],
    )
    weighting: str = opt(
        "none",
        "sft: weight each row's loss by its question's vote share (confidence) or not",
        choices=["none", "confidence"],
    )
    adapter: str = opt("lora", "lora (PEFT adapters, merged after training) or full tuning", choices=["lora", "full"])
    lora_r: int = opt(8, "LoRA rank", ge=1)
    lora_alpha: int = opt(16, "LoRA alpha", ge=1)
    lora_dropout: float = opt(0.0, "LoRA dropout", ge=0.0, le=1.0)
    lr: float = opt(2e-4, "learning rate", gt=0.0)
    epochs: float = opt(1.0, "passes over the training rows", gt=0.0)
    batch_size: int = opt(4, "rows per optimizer step", ge=1)
    max_length: int = opt(512, "truncate rows longer than this many tokens", ge=16)
    seed: int = opt(
        -1,
        "seed for the build and train stages (row choice and order, LoRA init); -1 = the run's "
        "seed. Another value is a second training draw on the same (borrowed) samples",
        ge=-1,
    )
    draws: int = opt(
        1,
        "build/train draws per round on the same samples (train seeds +0..K-1), each evaluated: the report gives "
        "their mean and spread; the next round samples with the draw that agrees most with itself on the eval "
        "questions (no label read)",
        ge=1,
    )
    save_steps: int = opt(10, "checkpoint every N steps (weights, optimizer, RNG): a killed run resumes", ge=1)
    report_to: str = opt(
        "none",
        "where the trainer's loss and each round's metrics go (under run_dir/tracking/ unless the tracker's "
        "own environment variables say otherwise); tensorboard and mlflow: pip install 'lmsi[trackers]'",
        choices=list(TRACKERS),
    )
    dpo_beta: float = opt(0.1, "dpo: how strongly the policy is held to the reference (base) model", gt=0.0)
    grpo_generations: int = opt(8, "grpo: completions per prompt trained on (the group)", ge=2)
    grpo_votes: int = opt(
        16,
        "grpo: answers whose majority is a prompt's pseudo-label: the round's sampled paths when sample.m >= this, "
        "else the missing ones are sampled once before training",
        ge=1,
    )
    grpo_threshold: float = opt(
        0.5, "grpo: train only on prompts whose pseudo-label has at least this share of the votes", ge=0.0, le=1.0
    )
    grpo_no_answer: float = opt(-0.5, "grpo: reward of a completion stating no answer (a wrong one gets 0)", le=0.0)
    grpo_max_tokens: int = opt(
        0, "grpo: cap on tokens per completion; 0 = auto: 1.25x the 95th percentile of the sampled paths' lengths", ge=0
    )
    grpo_temperature: float = opt(0.7, "grpo: sampling temperature of the completions", gt=0.0)
    grpo_kl: float = opt(0.0, "grpo: KL penalty toward the base model (0 = none, no reference model held)", ge=0.0)
    grpo_probe_every: int = opt(
        10,
        "grpo: every N steps measure agreement on the eval questions (no label read); stop when it did not rise "
        "by loop.min_gain and keep the best model (loop.stop=false or 0 here: never)",
        ge=0,
    )
    grpo_probe_questions: int = opt(
        32,
        "grpo: the first N eval questions probed (0 = all): a probe samples grpo_generations paths per question",
        ge=0,
    )
    grpo_vllm: str = opt(
        "auto",
        "grpo: generate with vLLM colocated on the GPU (auto: when vLLM imports and CUDA is up)",
        choices=["auto", "off", "on"],
    )
    args: dict = opt(
        {},
        "any other trainer argument by its TRL name, passed straight into trl's SFTConfig/DPOConfig/GRPOConfig "
        "(e.g. {lr_scheduler_type: cosine, gradient_checkpointing: true}); a key here overrides lmsi's own choice",
    )


# The TRL argument each curated train.* key sets, per method: setting both (the curated key away
# from its default) is a ConfigError. train.args.seed always is: lmsi derives each round's and draw's seed.
_SHARED_TRL_ARGS = {
    "seed": "seed",
    "learning_rate": "lr",
    "num_train_epochs": "epochs",
    "gradient_accumulation_steps": "batch_size",
    "save_steps": "save_steps",
    "report_to": "report_to",
}
TRL_ARGS = {
    "sft": {**_SHARED_TRL_ARGS, "per_device_train_batch_size": "batch_size", "max_length": "max_length"},
    "dpo": {
        **_SHARED_TRL_ARGS,
        "per_device_train_batch_size": "batch_size",
        "max_length": "max_length",
        "beta": "dpo_beta",
    },
    "grpo": {
        **_SHARED_TRL_ARGS,
        "per_device_train_batch_size": "grpo_generations",
        "num_generations": "grpo_generations",
        "max_completion_length": "grpo_max_tokens",
        "temperature": "grpo_temperature",
        "beta": "grpo_kl",
    },
}
TRL_CONFIGS = {"sft": "SFTConfig", "dpo": "DPOConfig", "grpo": "GRPOConfig"}  # the trl class train.args fills


@dataclass
class EvalConfig:
    task: str = opt("", "task to evaluate on (empty: data.task); same forms as data.task")
    split: str = opt("auto", "labeled held-out split (auto: the task's eval split)")
    limit: int = opt(20, "held-out questions (0 = all)", ge=0)
    modes: list = opt(["greedy_cot", "sc", "direct"], "any of " + ", ".join(EVAL_MODES))
    sc_m: int = opt(4, "paths for self-consistency maj@m", ge=1)
    sc_limit: int = opt(
        0, "self-consistency on the first N of those questions only (0 = all); other modes take all", ge=0
    )


@dataclass
class OpenAIConfig:
    base_urls: list = opt(
        [], "OpenAI-compatible endpoints for backend=openai, e.g. [http://127.0.0.1:8080/v1]; several are load-balanced"
    )
    served_model: str = opt(
        "", "the `model` field sent to the server (llama.cpp ignores it; vLLM needs its model name)"
    )
    api_key_env: str = opt(
        "OPENAI_API_KEY", "environment variable holding the API key (the key itself is never stored)"
    )
    concurrency: int = opt(4, "requests in flight per endpoint", ge=1)
    timeout: float = opt(120.0, "seconds per request before it is retried", gt=0.0)
    retries: int = opt(5, "retries per request (exponential backoff) before the stage fails", ge=0)
    serve: str = opt(
        "",
        "a command lmsi runs to serve one model on 127.0.0.1, for the base model and again for each round's "
        "model (so round models sample from a server too): {gguf} (the model as GGUF; round models are "
        "exported) or {model} (its folder or id), and {port}, e.g. 'python -m llama_cpp.server --model {gguf} "
        "--port {port}'; base_urls stays empty",
    )
    lora_adapters: bool = opt(
        False,
        "serve round models from the base_urls servers too, by loading each round's LoRA adapter into "
        "every one at run time (vLLM: start it with --enable-lora and the environment variable "
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True). The servers read the adapter folder by its path here, so "
        "the run directory must be at the same path on them (a shared filesystem). LoRA rounds trained "
        "from the base model only (train.adapter=lora, no student, loop.init=base); off: round models "
        "sample with hf in this process",
    )


@dataclass
class RayConfig:
    address: str = opt("", "Ray cluster address (empty: start a local cluster)")
    workers: int = opt(2, "sampler workers (each holds one model)", ge=1)
    cpus_per_worker: float = opt(1.0, "CPUs Ray reserves per worker", gt=0.0)


@dataclass
class LoopConfig:
    rounds: int = opt(1, "self-improvement rounds; round k samples with the model from round k-1", ge=1)
    init: str = opt(
        "base",
        "what round k fine-tunes: the base model on round k's data (default: no compounding "
        "drift, as in STaR) or the previous round's model",
        choices=["base", "previous"],
    )
    questions: str = opt(
        "fresh",
        "fresh: each round takes new unlabeled questions, so its vote measures the previous "
        "model on unseen questions; same: every round reuses one set",
        choices=["fresh", "same"],
    )
    stop: bool = opt(
        True, "stop early when label-free agreement (mean vote share on the round's fresh questions) stops rising"
    )
    min_gain: float = opt(
        0.01, "stop when agreement rises by less than this from one model to the next (a plateau)", ge=0.0
    )
    min_agreement: float = opt(
        0.5,
        "before training, a round's vote is weak when its agreement (mean top vote share) is below this "
        "(lifted above chance on choice and label tasks); loop.stop then stops the run before training on it "
        "(docs/vote-check.md)",
        ge=0.0,
        le=1.0,
    )


@dataclass
class SelfGenConfig:
    questions: bool = opt(False, "the model writes the unlabeled questions itself, in the style of seed questions")
    seed_questions: int = opt(8, "pool questions shown as style seeds (their text only)", ge=1)
    per_prompt: int = opt(3, "seed questions in each generation prompt", ge=1)
    generate: int = opt(64, "candidate questions to draw before filtering", ge=1)
    temperature: float = opt(1.0, "sampling temperature for question writing", gt=0.0)
    exemplars: bool = opt(False, "build the few-shot CoT exemplars from the model's own confident zero-shot answers")
    exemplar_pool: int = opt(8, "unlabeled questions tried as exemplar candidates", ge=1)
    exemplar_m: int = opt(4, "zero-shot CoT paths per candidate; the most agreed-on become exemplars", ge=1)


@dataclass
class RunConfig:
    run_dir: str = opt("runs/default", "run directory (resumable)")
    model: str = opt("embedded:qwen2.5-coder-0.5b", "embedded:NAME, a .gguf path, an HF dir or hub id")
    engine: str = opt(
        "local",
        "where the sample stage runs: local, or ray (workers on a Ray cluster, see ray.*)",
        choices=["local", "ray"],
    )
    backend: str = opt(
        "hf",
        "sampler: hf (pure torch), llamacpp (GGUF models; ./scripts/setup.sh builds it), "
        "openai (a server: see openai.*; round models use hf unless openai.serve restarts it on them), "
        "vllm (CUDA GPUs, pip install vllm), auto (llamacpp when installed and the model is a GGUF, else hf), fake (tests)",
        choices=["hf", "llamacpp", "openai", "vllm", "auto", "fake"],
    )
    dtype: str = opt(
        "auto", "auto picks the faster of bf16/fp32 on this machine", choices=["auto", "float32", "bfloat16"]
    )
    seed: int = opt(0, "seed for sampling and training")
    trust_remote_code: bool = opt(False, "allow model repos to run their own code (off: unsafe)")
    student: str = opt(
        "", "distillation: train this (smaller) model on the teacher's confident paths; empty = self-training"
    )
    data: DataConfig = field(default_factory=DataConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    selfgen: SelfGenConfig = field(default_factory=SelfGenConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    build: BuildConfig = field(default_factory=BuildConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
