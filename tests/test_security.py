"""Safety defaults: no remote code unless asked, no pickled weights, model output never run."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from lmsi.cli import app
from lmsi.config import load_config


def test_remote_code_never_runs_unless_asked(tiny_model_dir, tmp_path):
    repo = tmp_path / "custom"
    shutil.copytree(tiny_model_dir, repo)
    marker = tmp_path / "ran.txt"
    (repo / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('code ran')\nfrom transformers import Qwen2Config as EvilConfig\n"
    )
    cfg = json.loads((repo / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig"}
    (repo / "config.json").write_text(json.dumps(cfg))
    assert load_config().trust_remote_code is False
    args = ["eval", "--task", "arith", "--limit", "1", "--model", str(repo), "sample.max_new_tokens=4"]
    CliRunner().invoke(app, [*args, "-r", str(tmp_path / "r")])
    assert not marker.exists()  # the repo's code was ignored
    CliRunner().invoke(app, [*args, "-r", str(tmp_path / "r2"), "trust_remote_code=true"])
    assert marker.exists()  # ...and would have run had the user allowed it


def test_pickled_weights_are_never_loaded(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from lmsi.models import load_model

    repo = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, repo)
    for f in repo.glob("*.safetensors"):
        f.unlink()
    import torch

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.save(model.state_dict(), repo / "pytorch_model.bin")  # a pickle, as old checkpoints ship
    with pytest.raises(Exception, match="safetensors|model.safetensors"):
        load_model(str(repo), "float32")


@pytest.mark.parametrize(
    "text",
    [
        "The answer is __import__('os').system('touch /tmp/x').",
        "The answer is 2**10**10**10.",
        "The answer is (lambda: 1)().",
    ],
)
def test_answers_are_parsed_never_evaluated(text):
    from lmsi.tasks import get_task

    assert get_task("gsm8k").extract(text) in (None, "2", "1", "10")  # a regex and a Fraction, nothing else
