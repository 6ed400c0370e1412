"""Run configuration: the schema (one dataclass per stage) and its loading from YAML and overrides."""

from .loading import diff_configs, load_config, parse_override, with_defaults
from .schema import (
    EVAL_MODES,
    TRACKERS,
    BuildConfig,
    ConfigError,
    DataConfig,
    EvalConfig,
    LoopConfig,
    OpenAIConfig,
    RayConfig,
    RunConfig,
    SampleConfig,
    SelfGenConfig,
    TrainConfig,
    opt,
)

__all__ = [
    "EVAL_MODES",
    "TRACKERS",
    "BuildConfig",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "LoopConfig",
    "OpenAIConfig",
    "RayConfig",
    "RunConfig",
    "SampleConfig",
    "SelfGenConfig",
    "TrainConfig",
    "diff_configs",
    "load_config",
    "opt",
    "parse_override",
    "with_defaults",
]
