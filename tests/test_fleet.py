"""engine=ray on a real local Ray cluster: the same dataset as one process, and a worker that
dies mid-stage costs nothing."""

import pytest
from typer.testing import CliRunner

from lmsi.cli import app

ray = pytest.importorskip("ray")
ARGS = ["data.limit=10", "sample.m=3", "sample.batch_rows=6", "sample.max_new_tokens=8"]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_sampling_matches_one_process(tiny_model_dir, tmp_path):
    local, distributed = tmp_path / "local", tmp_path / "ray"
    for rd, cmd in ((local, ["sample"]), (distributed, ["sample", "engine=ray", "ray.workers=2"])):
        r = CliRunner().invoke(app, [cmd[0], "-r", str(rd), f"model={tiny_model_dir}", *ARGS, *cmd[1:]])
        assert r.exit_code == 0, r.output
    a = (local / "round_01/samples.jsonl").read_bytes()
    assert a == (distributed / "round_01/samples.jsonl").read_bytes() and a.count(b"\n") == 10


def test_a_dying_worker_loses_and_duplicates_nothing(tmp_path):
    import json

    from lmsi.backends import SamplingParams
    from lmsi.fleet import RayFleet

    fleet = RayFleet({"backend": "fake", "spec": None}, workers=2)
    jobs = [([f"Q: {i} + {j}?\nA:" for j in range(3)], SamplingParams(n=2, seed=i)) for i in range(8)]
    results = fleet.map(jobs)
    first = [next(results)]
    ray.kill(fleet.actors[0], no_restart=False)  # the process dies; Ray restarts it and retries its task
    got = first + list(results)
    from lmsi.backends.fake import FakeSampler

    want = [FakeSampler().generate(*job) for job in jobs]
    assert json.dumps(got) == json.dumps(want)


def test_run_engine_flag_reaches_the_config(tiny_model_dir, tmp_path):
    r = CliRunner().invoke(
        app,
        [
            "run",
            "--engine",
            "ray",
            "--backend",
            "fake",
            "-r",
            str(tmp_path / "r"),
            f"model={tiny_model_dir}",
            "ray.workers=1",
            "data.limit=2",
            "sample.m=2",
            "eval.limit=2",
            "eval.sc_m=2",
            "build.threshold=0.0",
            "train.batch_size=2",
        ],
    )
    assert r.exit_code == 0, r.output
    saved = (tmp_path / "r" / "config.yaml").read_text()
    assert "engine: ray" in saved and "backend: fake" in saved


@pytest.mark.slow
def test_ray_with_the_embedded_model_matches_one_process(tmp_path):
    import torch

    args = [
        "model=embedded:qwen2.5-coder-0.5b",
        "data.limit=4",
        "sample.m=2",
        "sample.batch_rows=4",
        "sample.max_new_tokens=24",
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker runs: float sums may depend on the thread count
    for rd, extra in ((tmp_path / "local", []), (tmp_path / "ray", ["engine=ray", "ray.workers=2"])):
        r = CliRunner().invoke(app, ["sample", "-r", str(rd), *args, *extra])
        assert r.exit_code == 0, r.output
    torch.set_num_threads(threads)
    a = (tmp_path / "local/round_01/samples.jsonl").read_bytes()
    assert a == (tmp_path / "ray/round_01/samples.jsonl").read_bytes() and a.count(b"\n") == 4
