"""An lmsi evaluation in lm-evaluation-harness's output layout, so tools made for lm-eval output
read ours:

    OUT/<model, sanitised as lm-eval does>/results_<time>.json
    OUT/<model>/samples_<task>_<time>.jsonl       one per eval mode

Each mode is one lm-eval "task" (`<task>_<mode>`) with the metric exact_match (and f1 for text
tasks) under a filter named for how lmsi read the answer: `lmsi-extract` (lmsi's extractor on the
one greedy path) or `maj@m` (the majority vote over m sampled paths). Stderr is lm-eval's: the
sample standard deviation over sqrt(n). Per-item lines keep lm-eval's keys (doc_id, doc, target,
arguments, resps, filtered_resps, filter, metrics, hashes, the metric values).

    export_lmeval(Path("runs/eval/x/eval"), Path("runs/eval/x/lm-eval"), cfg, task, "embedded:...")
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from datetime import datetime
from pathlib import Path

from .config import RunConfig
from .evaluate import mode_params
from .io import atomic_write_text, read_jsonl
from .tasks import Example, Task

INVALID = "[invalid]"  # what lm-eval's regex filters return when no answer is found


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sanitize_model_name(name: str) -> str:
    """The folder name lm-eval gives a model's results."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def stderr(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    mu = sum(values) / n
    return math.sqrt(sum((x - mu) ** 2 for x in values) / (n - 1)) / math.sqrt(n)


def filter_name(mode: str, cfg: RunConfig) -> str:
    return f"maj@{cfg.eval.sc_m}" if mode == "sc" else "lmsi-extract"


def _gen_kwargs(mode: str, task: Task, cfg: RunConfig) -> dict:
    p = mode_params(mode, task, cfg.eval, cfg.sample.max_new_tokens, cfg.seed)
    return {
        "until": list(p.stop),
        "do_sample": p.temperature > 0,
        "temperature": p.temperature,
        "max_gen_toks": p.max_new_tokens,
    }


def _doc(row: dict, ex: Example | None) -> dict:
    doc = {"id": row["id"], "question": ex.question if ex else None, "answer": row["gold"]}
    if ex and ex.choices:
        doc["choices"] = list(ex.choices)
    return doc


def _samples(rows: list[dict], examples: dict, filt: str, gen: dict) -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        doc, target = _doc(r, examples.get(r["id"])), str(r["gold"])
        metrics = {"exact_match": float(r["correct"])}
        if "f1" in r:
            metrics["f1"] = float(r["f1"])
        out.append(
            {
                "doc_id": i,
                "doc": doc,
                "target": target,
                "arguments": {"gen_args_0": {"arg_0": r["prompt"], "arg_1": gen}},
                "resps": [r["paths"]],
                "filtered_resps": [INVALID if r["prediction"] is None else r["prediction"]],
                "filter": filt,
                "metrics": list(metrics),
                "doc_hash": sha256(json.dumps(doc, indent=2, ensure_ascii=False)),
                "prompt_hash": sha256(r["prompt"]),
                "target_hash": sha256(target),
                **metrics,
            }
        )
    return out


def _task_metrics(name: str, samples: list[dict], filt: str) -> dict:
    out = {"name": name, "alias": name, "sample_len": len(samples)}
    for metric in samples[0]["metrics"] if samples else ["exact_match"]:
        values = [s[metric] for s in samples]
        out[f"{metric},{filt}"] = sum(values) / max(1, len(values))
        out[f"{metric}_stderr,{filt}"] = stderr(values)
    return out


def export_lmeval(
    eval_dir: Path,
    out: Path,
    cfg: RunConfig,
    task: Task,
    model: str,
    examples: list[Example] = (),
    split_size: int | None = None,
) -> list[Path]:
    """Write every finished mode of `eval_dir` under out/<model>/; returns the files written."""
    eval_dir, folder = Path(eval_dir), Path(out) / sanitize_model_name(model)
    by_id = {e.id: e for e in examples}
    stamp = datetime.now().isoformat().replace(":", "-")
    results: dict = {k: {} for k in ("results", "group_subtasks", "configs", "versions", "n-shot")}
    results.update({"higher_is_better": {}, "n-samples": {}})
    written, hashes = [], {}
    for mode in cfg.eval.modes:
        rows = read_jsonl(eval_dir / f"{mode}.jsonl") if (eval_dir / f"{mode}.jsonl").exists() else []
        if not rows:
            continue
        name, filt, gen = (
            re.sub(r"\W", "_", f"{task.name}_{mode}"),
            filter_name(mode, cfg),
            _gen_kwargs(mode, task, cfg),
        )
        samples = _samples(rows, by_id, filt, gen)
        shots = 0 if mode == "zeroshot_cot" else cfg.sample.shots
        results["results"][name] = _task_metrics(name, samples, filt)
        results["group_subtasks"][name] = []
        results["configs"][name] = {
            "task": name,
            "dataset_path": task.name,
            "test_split": cfg.eval.split,
            "output_type": "generate_until",
            "num_fewshot": shots,
            "generation_kwargs": gen,
            "repeats": 1,
            "filter_list": [{"name": filt, "filter": [{"function": filt}]}],
            "metric_list": [
                {"metric": m, "aggregation": "mean", "higher_is_better": True} for m in samples[0]["metrics"]
            ],
            "metadata": {"version": task.version, "lmsi_mode": mode},
        }
        results["versions"][name] = task.version
        results["n-shot"][name] = shots
        results["higher_is_better"][name] = {m: True for m in samples[0]["metrics"]}
        results["n-samples"][name] = {"original": split_size or len(rows), "effective": len(rows)}
        hashes[name] = sha256("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in samples))
        path = folder / f"samples_{name}_{stamp}.jsonl"
        atomic_write_text(path, "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
        written.append(path)
    limit = cfg.eval.limit or None
    results["config"] = {
        "model": f"lmsi-{cfg.backend}",
        "model_args": {"pretrained": model, "dtype": cfg.dtype},
        "model_num_parameters": None,
        "model_dtype": cfg.dtype,
        "model_revision": None,
        "model_sha": None,
        "batch_size": str(cfg.sample.batch_rows),
        "batch_sizes": [],
        "device": None,
        "use_cache": None,
        "limit": limit,
        "bootstrap_iters": 0,  # lmsi's own CIs are bootstrap over items; lm-eval's stderr is analytic
        "gen_kwargs": None,
        "random_seed": cfg.seed,
        "numpy_seed": cfg.seed,
        "torch_seed": cfg.seed,
        "fewshot_seed": cfg.seed,
    }
    results.update(
        git_hash=None,
        date=time.time(),
        task_hashes=hashes,
        model_source=f"lmsi-{cfg.backend}",
        model_name=model,
        model_name_sanitized=sanitize_model_name(model),
        system_instruction=None,
        system_instruction_sha=None,
        fewshot_as_multiturn=False,
        chat_template=None,
        chat_template_sha=None,
        total_evaluation_time_seconds=None,
    )
    path = folder / f"results_{stamp}.json"
    atomic_write_text(path, json.dumps(results, indent=2, ensure_ascii=False))
    return [path, *written]
