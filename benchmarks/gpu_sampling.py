"""Sampling throughput on a GPU: naive `model.generate` vs lmsi's hf sampler, same prompts, same run.

The weights are random (a Qwen2.5-0.5B-shaped model built from its config), since the
throughput of the m-paths workload does not depend on their values; the prompts are lmsi's
own 4-shot arithmetic CoT prompts (~400 tokens). With random weights no path stops early, so
every path runs to the token cap: this measures decode throughput at full batch.

    python benchmarks/gpu_sampling.py MODEL_DIR OUT.json [--paths 16 --questions 64 --max-new-tokens 128]

MODEL_DIR needs config.json and the tokenizer files only. Writes a JSON result that
scripts/cost_model.py reads.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--paths", type=int, default=16)
    ap.add_argument("--questions", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-rows", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--naive-questions", type=int, default=8)
    a = ap.parse_args()

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from lmsi.backends import SamplingParams
    from lmsi.backends.hf import HFSampler
    from lmsi.tasks import get_task

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    cfg = AutoConfig.from_pretrained(a.model_dir)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=dtype).to(dev).eval()
    n_params = sum(p.numel() for p in model.parameters())
    task = get_task("arith")
    prompts = [task.prompt(e.question, "fewshot_cot", 4) for e in task.load("train", a.questions)]
    params = SamplingParams(n=a.paths, temperature=0.7, max_new_tokens=a.max_new_tokens, stop=task.stop, seed=0)
    results = {
        "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
        "dtype": str(dtype),
        "params": n_params,
        "paths": a.paths,
        "max_new_tokens": a.max_new_tokens,
        "prompt_tokens": sum(len(tok(p).input_ids) for p in prompts) / len(prompts),
        "engines": {},
    }

    def timed(name, fn, n_prompts):
        if dev == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        outs = fn()
        if dev == "cuda":
            torch.cuda.synchronize()
        secs = time.perf_counter() - t
        tokens = sum(len(tok(c, add_special_tokens=False).input_ids) for o in outs for c in o)
        results["engines"][name] = {
            "seconds": secs,
            "tokens": tokens,
            "tok_s": tokens / secs,
            "paths_s": n_prompts * a.paths / secs,
            "questions": n_prompts,
        }
        print(name, json.dumps(results["engines"][name]), flush=True)

    def naive(ps):
        out = []
        for p in ps:
            ids = tok(p, return_tensors="pt").to(dev)
            with torch.inference_mode():
                g = model.generate(
                    **ids,
                    do_sample=True,
                    temperature=0.7,
                    top_k=0,
                    max_new_tokens=a.max_new_tokens,
                    num_return_sequences=a.paths,
                    pad_token_id=tok.eos_token_id,
                )
            out.append(tok.batch_decode(g[:, ids.input_ids.shape[1] :], skip_special_tokens=True))
        return out

    naive(prompts[:1])  # warm-up (kernels, allocator)
    timed("naive_generate", lambda: naive(prompts[: a.naive_questions]), a.naive_questions)
    for rows in a.batch_rows:
        s = HFSampler(model, tok, batch_rows=rows)
        s.generate(prompts[:2], SamplingParams(**{**params.__dict__, "max_new_tokens": 8}))  # warm-up
        timed(f"lmsi_hf_rows{rows}", lambda s=s: s.generate(prompts, params), len(prompts))
    x = torch.randn(8192, 8192, device=dev, dtype=dtype)
    x @ x
    if dev == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        x @ x
    if dev == "cuda":
        torch.cuda.synchronize()
    results["matmul_tflops"] = 10 * 2 * 8192**3 / (time.perf_counter() - t) / 1e12
    results["roofline_tok_s"] = results["matmul_tflops"] * 1e12 / (2 * n_params)
    with open(a.out, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps({k: v for k, v in results.items() if k != "engines"}))


if __name__ == "__main__":
    main()
