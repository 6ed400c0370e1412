"""Write a fine-tuned transformers checkpoint back to GGUF, so llama.cpp can sample from the
model a round produced. Metadata and tokenizer come from the base model's GGUF (same
architecture, same vocabulary); weights are the checkpoint's, Q8_0 for matrices and F32 for
norms and biases. Supports the llama and qwen2 architectures.
"""

from __future__ import annotations

import re
from pathlib import Path

from .models import ModelError

_NAMES = [
    (r"model\.embed_tokens\.weight", "token_embd.weight"),
    (r"model\.norm\.weight", "output_norm.weight"),
    (r"lm_head\.weight", "output.weight"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"blk.\1.attn_norm.weight"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"blk.\1.ffn_norm.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", r"blk.\1.attn_\2.\3"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.weight", r"blk.\1.attn_output.weight"),
    (r"model\.layers\.(\d+)\.mlp\.gate_proj\.weight", r"blk.\1.ffn_gate.weight"),
    (r"model\.layers\.(\d+)\.mlp\.up_proj\.weight", r"blk.\1.ffn_up.weight"),
    (r"model\.layers\.(\d+)\.mlp\.down_proj\.weight", r"blk.\1.ffn_down.weight"),
]


def gguf_name(hf_name: str) -> str:
    for pat, rep in _NAMES:
        if re.fullmatch(pat, hf_name):
            return re.sub(pat, rep, hf_name)
    raise ValueError(f"no GGUF name for tensor {hf_name!r}")


def _llama_permute(w, n_head: int):
    """llama.cpp's rotary layout for q/k rows (what transformers' GGUF loader undid)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def export_gguf(hf_dir: Path, base_gguf: Path, out: Path) -> Path:
    import gguf
    import numpy as np
    from safetensors.torch import load_file  # torch: checkpoints may hold bf16, which numpy lacks

    reader = gguf.GGUFReader(str(base_gguf))
    arch = reader.fields["general.architecture"].contents()
    if arch not in ("llama", "qwen2"):
        raise ModelError(f"GGUF export supports llama and qwen2, not {arch!r}")
    heads = reader.fields[f"{arch}.attention.head_count"].contents()
    heads_kv = reader.fields[f"{arch}.attention.head_count_kv"].contents()
    base_names = {t.name for t in reader.tensors}
    tensors = {}
    for f in sorted(Path(hf_dir).glob("*.safetensors")):
        tensors.update({k: v.float().numpy() for k, v in load_file(str(f)).items()})
    tmp = out.with_name(out.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub)
    written = set()
    for name, w in tensors.items():
        target = gguf_name(name)
        w = w.astype(np.float32)
        if arch == "llama" and target.endswith(("attn_q.weight", "attn_k.weight")):
            w = _llama_permute(w, heads if "attn_q" in target else heads_kv)
        _add(writer, target, w)
        written.add(target)
    if "output.weight" in base_names and "output.weight" not in written:  # tied embeddings
        _add(writer, "output.weight", tensors["model.embed_tokens.weight"].astype(np.float32))
        written.add("output.weight")
    missing = base_names - written
    if missing:
        raise ValueError(f"{hf_dir}: no weights for {sorted(missing)[:3]} of the base GGUF")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)
    return out


def _add(writer, name: str, w) -> None:
    import gguf

    if w.ndim == 2 and w.shape[1] % 32 == 0:
        q = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q8_0)
        writer.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)  # shape derived from the bytes
    else:
        writer.add_tensor(name, w)
