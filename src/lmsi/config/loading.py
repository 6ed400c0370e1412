"""Loading a run configuration: YAML + `a.b=value` overrides, checked against the schema.

Unknown keys and out-of-range values raise ConfigError naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from ..tasks.base import FORMATS
from .schema import EVAL_MODES, TRL_ARGS, TRL_CONFIGS, ConfigError, RunConfig, TrainConfig


class _Loader(yaml.SafeLoader):
    """Safe YAML that reads 1e-4 as the float it means (YAML 1.1 wants 1.0e-4 and reads a string)
    and refuses a key given twice in one mapping (plain YAML keeps the last one without a word)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for k, _ in node.value:
            key = self.construct_object(k, deep=True)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", k.start_mark)
            seen.add(key if isinstance(key, str) else id(k))
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"), list("-+0123456789.")
)


def _check_value(path: str, f: dataclasses.Field, value: Any) -> Any:
    typ = type(f.default) if f.default is not dataclasses.MISSING else type(f.default_factory())
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if typ is str and isinstance(value, bool) and "on" in f.metadata.get("choices", ()):
        value = "on" if value else "off"  # YAML 1.1 reads a bare on/off as a boolean
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ConfigError(f"config key {path!r} must be {typ.__name__}, got {value!r}")
    md = f.metadata
    if "choices" in md and value not in md["choices"]:
        raise ConfigError(f"config key {path!r} is {value!r}; allowed values: {md['choices']}")
    if "ge" in md and value < md["ge"]:
        raise ConfigError(f"config key {path!r} is {value!r}; must be >= {md['ge']}")
    if "gt" in md and value <= md["gt"]:
        raise ConfigError(f"config key {path!r} is {value!r}; must be > {md['gt']}")
    if "le" in md and value > md["le"]:
        raise ConfigError(f"config key {path!r} is {value!r}; must be <= {md['le']}")
    return value


def _apply(obj, data: dict, prefix: str = "") -> None:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"unknown config key {path!r}; allowed keys here: {sorted(fields)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(
                    f"config key {path!r} must be a mapping of {sorted(f.name for f in dataclasses.fields(current))}"
                )
            _apply(current, value, path + ".")
        else:
            setattr(obj, key, _check_value(path, fields[key], value))


def _validate(cfg: RunConfig) -> None:
    bad = set(cfg.build.formats) - set(FORMATS)
    if bad:
        raise ConfigError(f"config key 'build.formats' has unknown formats {sorted(bad)}; allowed: {list(FORMATS)}")
    if not any(w > 0 for w in cfg.build.formats.values()):
        raise ConfigError("config key 'build.formats' must give at least one format a weight > 0")
    if cfg.student and cfg.loop.rounds > 1:
        raise ConfigError("config key 'student': distillation runs one round (loop.rounds=1)")
    if cfg.train.weighting != "none" and cfg.train.method != "sft":
        raise ConfigError(
            f"config key 'train.weighting' is {cfg.train.weighting!r}, which only train.method=sft uses "
            f"(train.method is {cfg.train.method!r}); set train.weighting=none"
        )
    if cfg.openai.serve and (cfg.openai.base_urls or cfg.engine == "ray"):
        raise ConfigError(
            "config key 'openai.serve' starts its own server on 127.0.0.1: leave openai.base_urls empty "
            "and sample here (engine=local)"
        )
    _check_lora_adapters(cfg)
    _check_trl_args(cfg.train)
    clash = [k for k, v in cfg.train.args.items() if (k, v) in (("packing", True), ("loss_type", "dft"))]
    if cfg.train.weighting != "none" and clash:
        raise ConfigError(
            f"train.weighting={cfg.train.weighting} cannot go with train.args.{clash[0]}: it weights each row's nll"
        )
    cfg.eval.modes = [m.replace("-", "_").replace("zero_shot", "zeroshot") for m in cfg.eval.modes]
    bad = set(cfg.eval.modes) - set(EVAL_MODES)
    if bad or not cfg.eval.modes:
        raise ConfigError(f"config key 'eval.modes' has unknown modes {sorted(bad)}; allowed: {list(EVAL_MODES)}")


def _check_lora_adapters(cfg: RunConfig) -> None:
    """openai.lora_adapters puts a round's adapter on the base model the servers hold: refused at
    the start (not after a round of training) where that adapter is not one for that model."""
    if cfg.backend != "openai" or not cfg.openai.lora_adapters:
        return
    clash = [
        (not cfg.openai.base_urls, "openai.base_urls is empty (it loads adapters into those servers)"),
        (cfg.openai.serve, "openai.serve is set (that restarts lmsi's own server on each round's model instead)"),
        (cfg.train.adapter != "lora", "train.adapter=full leaves no adapter to load"),
        (cfg.student, "a student's adapters do not fit the model the servers hold"),
        (
            cfg.loop.init == "previous" and cfg.loop.rounds > 1,
            "with loop.init=previous, round 2's adapter sits on round 1's model, not on the servers' base model",
        ),
    ]
    for hit, why in clash:
        if hit:
            raise ConfigError(
                f"config key 'openai.lora_adapters' serves round models as LoRA adapters on the servers' base "
                f"model, but {why}; set openai.lora_adapters=false to sample round models with hf"
            )


def _check_trl_args(t: TrainConfig) -> None:
    """train.args: names TRL's config class has, none set twice (its curated twin away from its default)."""
    if not t.args:
        return
    default = TrainConfig()
    for name in t.args:
        key = TRL_ARGS[t.method].get(name)
        if key and (key == "seed" or getattr(t, key) != getattr(default, key)):
            raise ConfigError(f"train.{key} and train.args.{name} set the same thing; keep one of them")
        if name == "output_dir":
            raise ConfigError("config key 'train.args.output_dir': lmsi keeps checkpoints in the round directory")
    import trl  # only here: loading trl takes seconds, and most configs set no train.args

    cls = TRL_CONFIGS[t.method]
    fields = {f.name for f in dataclasses.fields(getattr(trl, cls))}
    for name in t.args:
        if name not in fields:
            near = difflib.get_close_matches(str(name), fields, n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise ConfigError(
                f"config key 'train.args.{name}' is not an argument of trl.{cls} (train.method={t.method}){hint}"
            )


def parse_override(text: str) -> dict:
    """'sample.m=8' -> {'sample': {'m': 8}} (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    value = yaml.load(raw, Loader=_Loader) if raw else ""
    out: dict = {}
    node = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def _merge(a: dict, b: dict) -> dict:
    for k, v in b.items():
        a[k] = _merge(a.get(k, {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return a


def with_defaults(saved: dict) -> dict:
    """A saved run config with the keys added to lmsi after the run started read as their defaults."""
    return _merge(RunConfig().to_dict(), saved)


def load_config(path: str | Path | None = None, overrides: list[str] = (), base: dict | None = None) -> RunConfig:
    data: dict = dict(base or {})
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.load(p.read_text(), Loader=_Loader) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
            raise ConfigError(f"{where}: invalid YAML ({getattr(e, 'problem', None) or e})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: top level must be a mapping")
        data = _merge(data, loaded)
    for o in overrides:
        data = _merge(data, parse_override(o))
    cfg = RunConfig()
    _apply(cfg, data)
    _validate(cfg)
    return cfg


def diff_configs(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict) and k != "formats":
            keys += diff_configs(a, b, f"{prefix}{k}.")
        elif a != b:
            keys.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return keys
