"""Safety defaults: no remote code unless asked, no pickled weights, model output never run."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from lmsi.cli import app
from lmsi.config import load_config
from lmsi.models import load_model
from lmsi.tasks import TASKS, get_task


def test_remote_code_never_runs_unless_asked(tiny_model_dir, tmp_path, monkeypatch):
    from transformers import Qwen2Config

    # the trusted load registers the repo's class (Qwen2Config itself) for AutoConfig; undone after
    # the test, or every later save_pretrained of a Qwen2 model would try to copy its "remote code"
    monkeypatch.setattr(Qwen2Config, "_auto_class", Qwen2Config._auto_class)
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
    safe = CliRunner().invoke(app, [*args, "-r", str(tmp_path / "r")])
    # the eval ran to the end on this very repo (a run that died early would prove nothing)
    assert safe.exit_code == 0, safe.output
    assert (tmp_path / "r" / "eval").is_dir() and any((tmp_path / "r" / "eval").iterdir()), safe.output
    assert not marker.exists()  # ...and the repo's code was ignored
    trusted = CliRunner().invoke(app, [*args, "-r", str(tmp_path / "r2"), "trust_remote_code=true"])
    assert trusted.exit_code == 0, trusted.output
    assert marker.read_text() == "code ran"  # ...and would have run had the user allowed it


def test_pickled_weights_are_never_loaded(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    repo = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, repo)
    for f in repo.glob("*.safetensors"):
        f.unlink()
    import torch

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.save(model.state_dict(), repo / "pytorch_model.bin")  # a pickle, as old checkpoints ship
    with pytest.raises(Exception, match="safetensors|model.safetensors"):
        load_model(str(repo), "float32")


# (model output with {marker} standing for a file path, the exact answer a regex reads from it)
PAYLOADS = [
    ("The answer is __import__('os').system('touch {marker}').", None),
    ("The answer is 2**10**10**10.", "2"),  # evaluated, this would never finish
    ("The answer is (lambda: 1)().", None),
    ("The answer is eval(\"open('{marker}', 'w').write('x')\") or 7.", None),
    ("Step 1: exec(\"open('{marker}', 'w')\"). The answer is 12.", "12"),
]


def _parsed_never_run(extract, template: str, want, marker) -> None:
    """`extract` reads the answer from the text as text: the exact answer, and no file made."""
    text = template.format(marker=marker)
    assert extract(text) == want, text
    assert not marker.exists(), f"the payload ran: {text}"


@pytest.mark.parametrize("template,want", PAYLOADS)
def test_answers_are_parsed_never_evaluated(template, want, tmp_path):

    _parsed_never_run(get_task("gsm8k").extract, template, want, tmp_path / "pwned")
    for name in TASKS:  # every task's extractor (numbers, letters, labels, text): none runs it
        get_task(name).extract(template.format(marker=tmp_path / "pwned"))
        assert not (tmp_path / "pwned").exists(), name


def test_the_payload_check_catches_an_evaluating_extractor(tmp_path):
    """The check above can fail: an extractor that evals the answer clause is caught."""

    def evaluating(text):
        return str(eval(text.split("answer is ", 1)[1].rstrip(".")))

    with pytest.raises(AssertionError):
        _parsed_never_run(evaluating, PAYLOADS[0][0], PAYLOADS[0][1], tmp_path / "pwned")
    assert (tmp_path / "pwned").exists()
