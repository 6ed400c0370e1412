"""Does a faster sampling engine keep the model's accuracy? Single-path and maj@m accuracy of the
hf sampler (fp32) and of other engines (--engines: hf-int8, the hf sampler on int8 dynamically
quantized Linear layers; llamacpp, the embedded GGUF with one shared KV pool; llamacpp-split, the
same with one KV stream per path), on the same questions, prompts and seeds, paired by question
(issue 20's accuracy check: an engine matches when the paired difference's 95% CI contains 0 and
its point estimate is >= -2 points).

    python benchmarks/engine_accuracy.py [--task multiarith] [--limit 100] [--m 4] [--engines hf-int8]

Writes benchmarks/results/engine-accuracy-<time>.md with the command. Each engine's evaluation
is an `lmsi.evaluate.run_eval` folder under --out, reused when finished (delete it to redo).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from lmsi.backends.hf import HFSampler
from lmsi.backends.llamacpp import LlamaCppSampler
from lmsi.bench import cpu_name, int8_dynamic
from lmsi.config import EvalConfig
from lmsi.evaluate import run_eval
from lmsi.io import read_jsonl
from lmsi.models import gguf_file, load_model
from lmsi.stats import bootstrap_ci
from lmsi.tasks import get_task


def verdicts(task, rows: list[dict]) -> dict[str, tuple[int, int]]:
    """Per question: (first sampled path right, majority right)."""
    return {r["id"]: (int(task.is_correct(r["answers"][0], r["gold"])), int(r["correct"])) for r in rows}


def cell(d: list[int]) -> str:
    lo, hi = bootstrap_ci([float(x) for x in d])
    return f"{100 * sum(d) / len(d):+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] ({d.count(1)} won, {d.count(-1)} lost)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="multiarith")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--m", type=int, default=4, help="sampled paths per question (T=0.7)")
    ap.add_argument("--shots", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--model", default="embedded:qwen2.5-coder-0.5b")
    ap.add_argument("--out", default="runs/engine-accuracy")
    ap.add_argument("--engines", default="hf-int8", help="comma list of hf-int8, llamacpp, llamacpp-split")
    args = ap.parse_args()
    task = get_task(args.task)
    examples = task.load(task.eval_split, args.limit)
    model, tok = load_model(args.model, "float32")
    gguf = lambda unified: LlamaCppSampler(str(gguf_file(args.model)), kv_unified=unified)  # noqa: E731
    known = {
        "hf fp32": lambda: HFSampler(model, tok),
        "hf-int8": lambda: HFSampler(int8_dynamic(model), tok),
        "llamacpp": lambda: gguf(True),
        "llamacpp-split": lambda: gguf(False),
    }
    wanted = ["hf fp32"] + [e for e in args.engines.split(",") if e]
    if unknown := [e for e in wanted if e not in known]:
        sys.exit(f"unknown engine(s) {unknown}; choose from {list(known)[1:]}")
    engines = {e: known[e] for e in wanted}
    cfg = EvalConfig(modes=["sc"], sc_m=args.m)
    rows, seconds = {}, {}
    for name, build in engines.items():
        out = Path(args.out) / name.replace(" ", "-")
        if not (out / "sc.jsonl").exists():
            sampler = build()  # loading and quantizing are not timed: once per model
            t = time.perf_counter()
            run_eval(task, sampler, examples, out, cfg, args.shots, args.max_new_tokens, 0)
            seconds[name] = time.perf_counter() - t
        rows[name] = verdicts(task, read_jsonl(out / "sc.jsonl"))
    base, ids = rows["hf fp32"], list(rows["hf fp32"])
    lines = [
        "| engine | single path | maj@m | single path, paired vs hf fp32 | maj@m, paired vs hf fp32 | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in rows.items():
        single = [v[i][0] for i in ids]
        maj = [v[i][1] for i in ids]
        d1 = [v[i][0] - base[i][0] for i in ids]
        dm = [v[i][1] - base[i][1] for i in ids]
        paired = ("—", "—") if name == "hf fp32" else (cell(d1), cell(dm))
        took = f"{seconds[name]:.0f}" if name in seconds else "reused"
        lines.append(
            f"| {name} | {100 * sum(single) / len(ids):.1f} | {100 * sum(maj) / len(ids):.1f} | "
            f"{paired[0]} | {paired[1]} | {took} |"
        )
    text = (
        f"# Engine accuracy\n\nCommand: `python benchmarks/engine_accuracy.py {' '.join(sys.argv[1:])}`\n\n"
        f"{len(ids)} {task.name} {task.eval_split} questions, {args.shots}-shot CoT, m={args.m} paths at T=0.7, "
        f"<= {args.max_new_tokens} tokens, seed 0, model `{args.model}`; machine {cpu_name()}, "
        f"{torch.get_num_threads()} torch threads. Single path: the first sampled path; maj@m: the vote.\n\n"
        + "\n".join(lines)
        + "\n"
    )
    print(text)
    path = Path("benchmarks/results") / f"engine-accuracy-{time.strftime('%Y%m%d-%H%M%S')}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
