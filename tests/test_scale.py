"""Multi-GPU training configs for accelerate (DeepSpeed ZeRO, FSDP)."""

from typer.testing import CliRunner

from lmsi.cli import app


def test_accelerate_configs_for_each_strategy(tmp_path):
    import yaml

    for strategy, kind in (("ddp", "MULTI_GPU"), ("zero2", "DEEPSPEED"), ("zero3", "DEEPSPEED"), ("fsdp", "FSDP")):
        out = tmp_path / f"{strategy}.yaml"
        r = CliRunner().invoke(app, ["accelerate-config", "--gpus", "4", "--strategy", strategy, "-o", str(out)])
        assert r.exit_code == 0, r.output
        cfg = yaml.safe_load(out.read_text())
        assert cfg["distributed_type"] == kind and cfg["num_processes"] == 4
    assert yaml.safe_load((tmp_path / "zero3.yaml").read_text())["deepspeed_config"]["zero_stage"] == 3
    r = CliRunner().invoke(app, ["accelerate-config", "--gpus", "2", "--strategy", "zero9", "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "choose one of" in r.output
