"""`lmsi bench sample`: the m-paths workload through naive `model.generate` (the baseline)
and each available backend, in one process, on the same prompts.

Reports generated tokens per second (real tokens only: cut at the first stop string, EOS
excluded, prompt processing included in the time), paths per second, the ratio to the
baseline, answer accuracy (a sanity check that speed did not change the distribution) and
the fraction of this machine's matmul roofline, measured in the same run:
roofline tok/s = peak GFLOP/s / (2 x parameters).
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

from .backends import SamplingParams, cut_at_stop, get_sampler
from .io import InputError
from .models import gguf_file, load_model, pick_dtype
from .tasks import get_task


def matmul_gflops(dtype_name: str, n: int = 1024, reps: int = 3, device: str = "cpu") -> float:
    """Peak matmul rate on the device the model runs on (the roofline's ceiling)."""
    import torch

    dt = getattr(torch, dtype_name)
    if device != "cpu":
        n, reps = 8192, 10  # a GPU needs big products to reach its peak
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    a, b = torch.randn(n, n, dtype=dt, device=device), torch.randn(n, n, dtype=dt, device=device)
    a @ b
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def naive_generate(model, tok, prompts: list[str], params: SamplingParams) -> list[list[str]]:
    """The baseline: transformers' generate, one call per prompt with num_return_sequences."""
    import torch

    torch.manual_seed(params.seed)
    out = []
    for p in prompts:
        ids = tok(p, return_tensors="pt", add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            gen = model.generate(
                **ids,
                do_sample=params.temperature > 0,
                temperature=params.temperature or None,
                top_p=params.top_p,
                top_k=0,
                max_new_tokens=params.max_new_tokens,
                num_return_sequences=params.n,
                pad_token_id=tok.pad_token_id,
            )
        texts = tok.batch_decode(gen[:, ids.input_ids.shape[1] :], skip_special_tokens=True)
        out.append([cut_at_stop(t, params.stop)[0] for t in texts])
    return out


def int8_dynamic(model):
    """A copy of `model` whose Linear layers hold int8 weights and quantize their inputs per
    call (torch's dynamic quantization; x86 int8 GEMM kernels, AVX2 here): a quarter of fp32's
    weight bytes per decode step. Activations in fp32 (the kernels take no bf16). CPU only; the
    model itself is left as it was."""
    import copy
    import warnings

    import torch

    if str(getattr(model, "device", "cpu")) != "cpu":
        raise InputError(f"engine hf-int8 runs on CPU; this model is on {model.device}")
    with warnings.catch_warnings():  # torch.ao's deprecation notices, one per layer
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model).float(), {torch.nn.Linear}, dtype=torch.qint8
        )


def run_bench(
    spec: str,
    task_name: str,
    questions: int,
    m: int,
    shots: int,
    max_new_tokens: int,
    temperature: float,
    engines: list[str],
    batch_rows: int,
    log=print,
    dtype: str = "auto",
) -> tuple[str, list[dict]]:
    task = get_task(task_name)
    examples = task.load(task.unlabeled_split, questions)
    prompts = [task.prompt(e.question, "fewshot_cot", shots) for e in examples]
    params = SamplingParams(n=m, temperature=temperature, max_new_tokens=max_new_tokens, stop=task.stop, seed=0)
    dtype = pick_dtype(dtype)
    model, tok = load_model(spec, dtype)
    n_params = sum(p.numel() for p in model.parameters())
    peak = {d: matmul_gflops(d, device=str(model.device)) for d in ("float32", "bfloat16")}
    roofline = max(peak.values()) * 1e9 / (2 * n_params)
    prompt_tokens = sum(len(tok(p, add_special_tokens=False).input_ids) for p in prompts) / len(prompts)
    results = []
    for engine in engines:
        if engine == "naive":
            run = lambda: naive_generate(model, tok, prompts, params)  # noqa: E731
        elif engine in ("hf", "hf-int8"):
            weights = int8_dynamic(model) if engine == "hf-int8" else model
            sampler = get_sampler("hf", weights, tokenizer=tok, batch_rows=batch_rows)
            run = lambda s=sampler: s.generate(prompts, params)  # noqa: E731
        elif engine in ("llamacpp", "llamacpp-split"):  # split: one KV stream per path
            path = gguf_file(spec)
            try:
                if path is None:
                    raise RuntimeError(f"the model is not a GGUF ({spec})")
                split = engine == "llamacpp-split"
                sampler = get_sampler("llamacpp", str(path), batch_rows=batch_rows, kv_unified=not split)
            except RuntimeError as e:  # a row with its error: the engines that ran still count
                log(f"{engine} did not start: {e}")
                results.append({"engine": engine, "error": str(e)})
                continue
            run = lambda s=sampler: s.generate(prompts, params)  # noqa: E731
        else:
            raise InputError(f"unknown engine {engine!r}")
        log(f"bench: {engine} ...")
        t = time.perf_counter()
        outs = run()
        secs = time.perf_counter() - t
        tokens = sum(len(tok(c, add_special_tokens=False).input_ids) for o in outs for c in o)
        correct = [task.is_correct(task.extract(c), e.answer) for e, o in zip(examples, outs) for c in o]
        results.append(
            {
                "engine": engine,
                "seconds": secs,
                "tokens": tokens,
                "tok_s": tokens / secs,
                "paths_s": len(correct) / secs,
                "accuracy": sum(correct) / len(correct),
                "roofline": tokens / secs / roofline,
            }
        )
    ran = [r for r in results if "error" not in r]
    base = next((r for r in ran if r["engine"] == "naive"), ran[0] if ran else None)
    lines = [
        f"Workload: {len(prompts)} {task_name} questions, {shots}-shot CoT prompt (~{prompt_tokens:.0f} tokens), "
        f"m={m}, T={temperature}, ≤{max_new_tokens} new tokens; model `{spec}` ({n_params / 1e6:.0f} M params, "
        f"torch {dtype}).",
        f"Machine: {cpu_name()}, {_cpus()} CPUs; matmul peak measured now: "
        f"fp32 {peak['float32']:.0f}, bf16 {peak['bfloat16']:.1f} GFLOP/s → roofline {roofline:.0f} tok/s.",
        "",
        "| engine | tok/s | paths/s | × baseline | roofline | answer acc. | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            error = " ".join(r["error"].split()).replace("|", "\\|")
            lines.append(f"| {r['engine']} | did not start: {error} | | | | | |")
            continue
        lines.append(
            f"| {r['engine']} | {r['tok_s']:.1f} | {r['paths_s']:.2f} | {r['tok_s'] / base['tok_s']:.2f} | "
            f"{100 * r['roofline']:.1f} % | {100 * r['accuracy']:.1f} % | {r['seconds']:.0f} |"
        )
    return "\n".join(lines), results


def cpu_name() -> str:
    """The CPU's model name and the matmul instruction sets that decide which dtype is fast."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((x.split(":", 1)[1].strip() for x in info.splitlines() if x.startswith("model name")), "?")
    flags = set(next((x.split(":", 1)[1].split() for x in info.splitlines() if x.startswith("flags")), []))
    isa = [label for flag, label in (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("amx_bf16", "AMX")) if flag in flags]
    return f"{platform.machine()} {name} ({', '.join(isa) or 'no AVX2'})"


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def save_result(
    text: str, command: str, out_dir: Path = Path("benchmarks/results"), name="sample", title="lmsi bench sample"
) -> Path:
    """benchmarks/results/<name>-<time>.md: the title, the command that made it, the result."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.md"
    path.write_text(f"# {title}\n\nCommand: `{command}`\n\n{text}\n")
    return path
