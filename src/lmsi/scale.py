"""Config files for multi-GPU training through `accelerate launch` (DeepSpeed ZeRO or FSDP).

    lmsi accelerate-config --gpus 8 --strategy zero2 -o accelerate.yaml
    accelerate launch --config_file accelerate.yaml -m lmsi.cli train -r runs/big

The Trainer inside `lmsi train` picks the distributed setup up from the launcher; a plain
`lmsi train` stays single-process (CPU or one GPU).
"""

from __future__ import annotations

from .io import InputError

STRATEGIES = ("ddp", "zero2", "zero3", "fsdp")


def accelerate_config(gpus: int, strategy: str, machines: int = 1, mixed_precision: str = "bf16") -> dict:
    if strategy not in STRATEGIES:
        raise InputError(f"strategy {strategy!r}; choose one of {STRATEGIES}")
    if gpus < 1 or machines < 1:
        raise InputError("gpus and machines must be >= 1")
    cfg = {
        "compute_environment": "LOCAL_MACHINE",
        "num_machines": machines,
        "num_processes": gpus * machines,
        "machine_rank": 0,
        "mixed_precision": mixed_precision,
        "use_cpu": False,
        "main_training_function": "main",
        "distributed_type": "MULTI_GPU" if gpus * machines > 1 else "NO",
    }
    if strategy.startswith("zero"):
        stage = int(strategy[-1])
        cfg["distributed_type"] = "DEEPSPEED"
        cfg["deepspeed_config"] = {
            "zero_stage": stage,
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "gradient_accumulation_steps": "auto",
            "zero3_init_flag": stage == 3,
            "zero3_save_16bit_model": stage == 3,
        }
    elif strategy == "fsdp":
        cfg["distributed_type"] = "FSDP"
        cfg["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_reshard_after_forward": True,
        }
    return cfg
