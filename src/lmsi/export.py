"""Export the model a run produced: a standard transformers folder (merged safetensors, tokenizer,
generation config) that `AutoModelForCausalLM.from_pretrained(OUT)` loads offline, a model card
(README.md) with the run's numbers and commands, optionally a Q8_0 GGUF for llama.cpp (the one
exporter the llama.cpp sampler uses too: gguf_export.export_gguf, llama and qwen2 only), and
optionally an upload to the Hugging Face Hub.

    export_model("runs/default", Path("export/m"), gguf=True)
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import yaml

from .gguf_export import export_gguf
from .io import InputError, atomic_write_text
from .models import gguf_file
from .report import format_table
from .rundir import RunDir

GGUF_NAME = "model-q8_0.gguf"
GGUF_ARCHITECTURES = ("llama", "qwen2")  # what gguf_export writes
EMBEDDED_LICENCES = {
    "qwen2.5-coder-0.5b": "apache-2.0",
    "qwen2.5-coder-1.5b": "apache-2.0",
    "smollm2-135m": "apache-2.0",
}
UNKNOWN_LICENCE = "see the base model"
SKIP = {"model.gguf", "lmsi_source.json"}  # the sampler's cached GGUF; where a converted model came from


def base_spec(cfg: dict) -> str:
    """The model that was trained: the student when distilling, else the model."""
    return cfg.get("student") or cfg["model"]


def pick_round(run: RunDir, round_k: int | None) -> int:
    """The round to export: the one asked for, else the last round that trained a model."""
    have = [k for k in run.rounds() if any((run.draw_dir(k, run.chosen_draw(k)) / "model").glob("*.safetensors"))]
    if round_k is None:
        if not have:
            raise InputError(f"{run.path}: no round has trained a model yet; run `lmsi run -r {run.path}` first")
        return have[-1]
    if round_k not in have:
        rounds = ", ".join(map(str, have)) or "none"
        raise InputError(f"{run.path}: round {round_k} has no trained model (rounds with a model: {rounds})")
    return round_k


def model_dir(run: RunDir, k: int) -> Path:
    return run.draw_dir(k, run.chosen_draw(k)) / "model"


def _front_matter_licence(readme: Path) -> str | None:
    text = readme.read_text(errors="replace") if readme.is_file() else ""
    if text.startswith("---"):
        meta = yaml.safe_load(text.split("---", 2)[1]) if text.count("---") >= 2 else None
        if isinstance(meta, dict) and meta.get("license"):
            return str(meta["license"])
    return None


def base_licence(spec: str) -> str:
    """The base model's licence: known for the embedded models, else read from the GGUF's
    general.license or the model folder's README front matter, else a pointer to the model."""
    if spec.startswith("embedded:"):
        return EMBEDDED_LICENCES.get(spec.split(":", 1)[1], UNKNOWN_LICENCE)
    path = Path(spec).expanduser()
    if spec.endswith(".gguf") and path.is_file():
        import gguf

        field = gguf.GGUFReader(str(path)).fields.get("general.license")
        return str(field.contents()) if field else UNKNOWN_LICENCE
    if path.is_dir():
        return _front_matter_licence(path / "README.md") or UNKNOWN_LICENCE
    return UNKNOWN_LICENCE


def _copy_model(src: Path, dst: Path) -> None:
    """The merged checkpoint and tokenizer, and a generation config (the saved one, else the model's)."""
    dst.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        if f.is_file() and f.name not in SKIP:
            shutil.copy2(f, dst / f.name)
    if not list(dst.glob("*.safetensors")):
        raise InputError(f"{src}: no safetensors weights to export")
    from transformers import AutoConfig, GenerationConfig

    try:
        GenerationConfig.from_pretrained(dst)  # saved with the model (save_outputs)
    except OSError:
        GenerationConfig.from_model_config(AutoConfig.from_pretrained(dst)).save_pretrained(dst)


def _settings(cfg: dict, k: int, loop: dict | None) -> list[tuple[str, str]]:
    d, s, b, t = cfg["data"], cfg["sample"], cfg["build"], cfg["train"]
    rounds = f"{k}" + (f" (the run did {loop['rounds_done']} of {loop['rounds_planned']})" if loop else "")
    stopped = loop.get("stopped") if loop else None
    rows = [
        ("base model", f"`{base_spec(cfg)}`" + (f" (distilled from `{cfg['model']}`)" if cfg.get("student") else "")),
        (
            "method",
            f"{t['method']}, {t['adapter']} adapter merged into the weights, lr {t['lr']}, {t['epochs']} epoch(s)",
        ),
        ("data", f"task `{d['task']}`, split {d['split']}, {d['limit'] or 'all'} unlabeled questions per round"),
        (
            "pseudo-labels",
            f"{b['vote']} vote over m={s['m']} sampled paths (T={s['temperature']}), kept at vote share ≥ {b['threshold']}",
        ),
        ("rounds", rounds),
        ("seed", str(cfg["seed"])),
    ]
    return rows + ([("loop", stopped)] if stopped else [])


def model_card(run: RunDir, k: int, licence: str, argv: list[str] | None = None, gguf: bool = False) -> str:
    cfg, loop = run.config, run.json("loop.json")
    base = base_spec(cfg)
    before, after = run.summary(run.base_eval), run.summary(run.eval_dir(k))
    eval_task = cfg["eval"]["task"] or cfg["data"]["task"]
    n = max((v.get("n", 0) for v in (after or before or {}).values() if isinstance(v, dict) and "n" in v), default=0)
    label = "student before" if run.base_eval.name == "eval_student" else "before"
    commands = run.commands() + ([shlex.join(["lmsi", *argv])] if argv else [])
    meta = {
        "base_model": base,
        "license": licence if licence != UNKNOWN_LICENCE else "other",  # the Hub's word for "see the text"
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["lmsi", "self-improvement"],
    }
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {base} after {k} round(s) of label-free self-improvement",
        "",
        "Fine-tuned with lmsi (label-free self-improvement) on its own majority-vote answers to unlabeled",
        "questions: no gold label was used for training (gold answers are read only to evaluate).",
        "",
        "## Training",
        "",
        "| | |",
        "|---|---|",
        *[f"| {a} | {b} |" for a, b in _settings(cfg, k, loop)],
        "",
        "## Evaluation",
        "",
        f"Held-out `{eval_task}` questions (n={n}), accuracy % [95% CI], before training and after round {k}:",
        "",
        format_table(before, after, label),
        "",
        "## Files",
        "",
        "- the merged weights (`*.safetensors`), model config, tokenizer and generation config: "
        "`AutoModelForCausalLM.from_pretrained(<this folder>)`",
        *(
            [f"- `{GGUF_NAME}`: Q8_0 GGUF for llama.cpp (metadata and tokenizer of the base model's GGUF)"]
            if gguf
            else []
        ),
        "",
        "## Reproduce",
        "",
        "The exact commands (from the run's commands.txt):",
        "",
        "```",
        *(commands or ["(not recorded)"]),
        "```",
        "",
        "## Licence",
        "",
        f"Licence of the base model `{base}`: {licence}. This derivative is distributed under the same terms.",
        "",
    ]
    return "\n".join(lines)


def export_model(
    run_dir: Path,
    out: Path,
    round_k: int | None = None,
    gguf: bool = False,
    force: bool = False,
    argv: list[str] | None = None,
    log=print,
) -> Path:
    """Write OUT (via OUT.tmp, renamed at the end) and return it."""
    run, out = RunDir(run_dir), Path(out)
    base = base_spec(run.config)  # InputError if RUN holds no saved config
    k = pick_round(run, round_k)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise InputError(f"{out} exists and is not empty; pass --force to replace it")
    base_gguf = gguf_file(base) if gguf else None
    if gguf and base_gguf is None:
        raise InputError(
            f"--gguf needs the base model as a GGUF (embedded:NAME or a .gguf path), not {base!r}; "
            "convert the exported folder with llama.cpp's convert_hf_to_gguf.py instead"
        )
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        src = model_dir(run, k)
        log(f"exporting round {k}'s model {src}")
        _copy_model(src, tmp)
        if gguf:
            log(f"writing {GGUF_NAME} (Q8_0; llama.cpp metadata and tokenizer from {base_gguf})")
            export_gguf(tmp, base_gguf, tmp / GGUF_NAME)
        atomic_write_text(tmp / "README.md", model_card(run, k, base_licence(base), argv, gguf))
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def push_to_hub(folder: Path, repo_id: str, private: bool = False) -> str:
    """Upload an exported folder; the token comes from the environment (HF_TOKEN) or `hf auth login`."""
    try:
        from huggingface_hub import HfApi

        api = HfApi()
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message="lmsi export")
    except ImportError as e:
        raise InputError(f"--push-to-hub needs huggingface_hub ({e})") from e
    except Exception as e:  # offline, no token, no permission: one line, the folder is kept
        first = (str(e).strip().splitlines() or [""])[0]
        raise InputError(f"upload to {repo_id} failed ({type(e).__name__}: {first}); {folder} is complete") from e
    return str(url)
