import json

import pytest

from lmsi.config import ConfigError, diff_configs, load_config
from lmsi.io import InputError, Manifest, read_jsonl, write_jsonl
from lmsi.tasks import get_task


@pytest.mark.parametrize(
    "override,needle",
    [
        ("sample.m=0", "sample.m"),
        ("sample.temperature=-1", "sample.temperature"),
        ("build.threshold=1.5", "build.threshold"),
        ("sample.bogus=1", "sample.bogus"),
        ("train.adapter=qlora", "allowed values"),
        ("eval.modes=[greedy_cot,oops]", "eval.modes"),
        ("nokey", "key.sub=value"),
    ],
)
def test_bad_config_names_key(override, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("[", r"\[")):
        load_config(overrides=[override])


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("sample:\n  m: 3\nbuild:\n  threshold: 0.6\n")
    cfg = load_config(p, ["sample.m=5"])
    assert cfg.sample.m == 5 and cfg.build.threshold == 0.6
    assert diff_configs(load_config().to_dict(), cfg.to_dict()) == ["build.threshold: 0.5 -> 0.6", "sample.m: 6 -> 5"]


def test_malformed_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_text('{"question": "a"}\n{"question": \n')
    with pytest.raises(InputError, match=r"q\.jsonl:2: malformed JSON"):
        read_jsonl(p)
    p.write_bytes(b'{"question": "\xff"}\n')
    with pytest.raises(InputError, match=r"q\.jsonl:1: not valid UTF-8"):
        read_jsonl(p)


def test_torn_tail_is_dropped_on_resume(tmp_path):
    p = tmp_path / "s.jsonl"
    write_jsonl(p, [{"id": 1}])
    with open(p, "a") as f:
        f.write('{"id": 2, "comp')
    assert read_jsonl(p, tolerate_torn_tail=True) == [{"id": 1}]


def test_file_task_errors(tmp_path):
    p = tmp_path / "mine.jsonl"
    p.write_text(json.dumps({"q": "What is 2+2?", "answer": 4}) + "\n")
    with pytest.raises(InputError, match=r"mine\.jsonl:1: field 'question' missing"):
        get_task(f"file:{p}").load()
    t = get_task(f"file:{p}", question_field="q")
    assert t.load()[0].answer == "4"
    p.write_text(json.dumps({"id": "a", "question": "x"}) + "\n" + json.dumps({"id": "a", "question": "y"}) + "\n")
    with pytest.raises(InputError, match="duplicate id"):
        get_task(f"file:{p}").load()
    p.write_text("")
    with pytest.raises(InputError, match="no questions"):
        get_task(f"file:{p}").load()


def test_arith_splits_disjoint_and_seeded():
    t = get_task("arith")
    train = {e.question for e in t.load("train")}
    test = t.load("test")
    assert not train & {e.question for e in test}
    assert t.load("test", 5) == test[:5]


def test_resume_accepts_older_config_files_and_other_run_dir_spellings(tmp_path, monkeypatch):
    import yaml

    from lmsi.config import load_config
    from lmsi.pipeline import Pipeline

    rd = tmp_path / "run"
    Pipeline(load_config(overrides=[f"run_dir={rd}", "sample.m=3"]), log=lambda m: None)
    saved = yaml.safe_load((rd / "config.yaml").read_text())
    del saved["loop"], saved["train"]["save_steps"]  # as written by an older lmsi
    (rd / "config.yaml").write_text(yaml.safe_dump(saved))
    monkeypatch.chdir(tmp_path)
    Pipeline(load_config(overrides=["run_dir=run", "sample.m=3"]), log=lambda m: None)  # no refusal
    Manifest(rd).mark("eval_base", 1.0)  # a stage's output locks the config (before it, a new one is taken)
    with pytest.raises(Exception, match="sample.m: 3 -> 4"):
        Pipeline(load_config(overrides=["run_dir=run", "sample.m=4"]), log=lambda m: None)
