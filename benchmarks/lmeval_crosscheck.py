"""Cross-check lmsi's evaluator against lm-evaluation-harness on the same items, same prompts.

For each task, runs `lmsi eval` (greedy few-shot CoT, backend=hf, float32) and `lm_eval run`
(model hf, the repo's task YAMLs in benchmarks/lmeval_tasks/: lmsi's exemplars and stop
sequences, lm-eval's own answer filters and metric) on the first N test items, then compares:
accuracy with 95% bootstrap CIs on both sides, how often the two harnesses generated the very same
text, and how often their per-item verdicts agree (overall and on identical generations).
Writes a markdown report with the commands. Finished runs are reused, so a rerun only redoes
what is missing (delete OUT to start over).

    python benchmarks/lmeval_crosscheck.py --limit 200 [--data-dir ../shared/data] [--out runs/lmeval-crosscheck]

Needs the lmeval extra (pip install -e '.[lmeval]'). The data dir holds the benchmark copies
(gsm8k/test.jsonl, arc_challenge/ARC-Challenge-Test.reconstructed.jsonl); default
../shared/data from the repository root.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from lmsi.io import read_jsonl
from lmsi.models import resolve_model
from lmsi.stats import bootstrap_ci
from lmsi.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"gsm8k": 256, "arc_challenge": 128}  # task -> token cap, the same on both sides
SHOTS = 3


def lmsi_cmd(task: str, model: str, limit: int, tokens: int, out: Path, batch_rows: int) -> list[str]:
    return [
        *("lmsi", "eval", "--task", task, "--model", model, "--mode", "greedy-cot", "--limit", str(limit)),
        *("-r", str(out), "backend=hf", "dtype=float32", f"sample.shots={SHOTS}", f"sample.max_new_tokens={tokens}"),
        *(f"sample.batch_rows={batch_rows}", "seed=0"),
    ]


def lmeval_cmd(task: str, folder: str, limit: int, tokens: int, out: Path, data_dir: str, batch: str) -> list[str]:
    return [
        *("lm_eval", "run", "--model", "hf", "--model_args", f"pretrained={folder},dtype=float32", "--device", "cpu"),
        *("--include_path", "benchmarks/lmeval_tasks", "--tasks", f"lmsi_{task}_cot", "--limit", str(limit)),
        *("--batch_size", batch, "--gen_kwargs", f"max_gen_toks={tokens}", "--seed", "0", "--log_samples"),
        *("--output_path", str(out), "--metadata", json.dumps({"data_dir": data_dir})),
    ]


def run(cmds: dict[str, list[str]], env: dict, log) -> dict[str, float]:
    """Run the commands side by side (each harness is one process, on its share of the cores:
    two processes each using every core slow each other down); seconds each took."""
    exe = {"lmsi": [sys.executable, "-m", "lmsi.cli"], "lm_eval": [sys.executable, "-m", "lm_eval"]}
    env = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // max(1, len(cmds))))} | env
    procs, t, took = {}, time.time(), {}
    for name, cmd in cmds.items():
        log(f"$ {shlex.join(cmd)}")
        procs[name] = subprocess.Popen([*exe[cmd[0]], *cmd[1:]], cwd=ROOT, env=env)
    for name, p in procs.items():
        if p.wait() != 0:
            raise SystemExit(f"{name} failed (exit {p.returncode})")
        took[name] = round(time.time() - t)
    return took


def lmeval_samples(out: Path, task: str) -> dict[str, list[dict]]:
    """lm-eval's per-item lines by filter name, in doc order."""
    files = sorted(glob.glob(str(out / "*" / f"samples_lmsi_{task}_cot_*.jsonl")))
    by_filter: dict[str, list[dict]] = {}
    for s in read_jsonl(Path(files[-1])):
        by_filter.setdefault(s["filter"], []).append(s)
    return {f: sorted(v, key=lambda s: s["doc_id"]) for f, v in by_filter.items()}


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def ci(values: list[float]) -> str:
    lo, hi = bootstrap_ci(values)
    return f"{pct(sum(values) / max(1, len(values)))} [{pct(lo)}, {pct(hi)}]"


def compare(task: str, rows: list[dict], lm: dict[str, list[dict]]) -> dict:
    """Accuracy, identical generations and verdict agreement of lmsi (rows) vs lm-eval (lm)."""
    n = len(rows)
    ours = [float(r["correct"]) for r in rows]
    first = next(iter(lm.values()))
    assert len(first) == n, f"{task}: lmsi scored {n} items, lm-eval {len(first)}"
    gold_ok = all(
        str(s["target"]).strip("()") == str(r["gold"]) or _num_eq(s["target"], r["gold"]) for s, r in zip(first, rows)
    )
    same = [r["paths"][0] == s["resps"][0][0] for r, s in zip(rows, first)]
    out = {"task": task, "n": n, "lmsi": ours, "gold_aligned": gold_ok, "same_text": same, "filters": {}}
    for name, lines in lm.items():
        theirs = [float(s["exact_match"]) for s in lines]
        agree = [a == b for a, b in zip(ours, theirs)]
        on_same = [a for a, s in zip(agree, same) if s]
        diffs = [
            {
                "doc_id": s["doc_id"],
                "id": r["id"],
                "same_text": t,
                "lmsi": (r["prediction"], bool(r["correct"])),
                "lm_eval": (s["filtered_resps"][0], bool(s["exact_match"])),
            }
            for r, s, a, t in zip(rows, lines, agree, same)
            if not a
        ]
        out["filters"][name] = {"acc": theirs, "agree": agree, "agree_same": on_same, "diffs": diffs}
    return out


def _num_eq(a, b) -> bool:
    try:
        return float(str(a).replace(",", "")) == float(str(b))
    except ValueError:
        return False


def render(results: list[dict], commands: list[str], meta: dict) -> str:
    lines = [
        f"# lmsi vs lm-evaluation-harness: same items, same prompts ({meta['date']})",
        "",
        f"Model `{meta['model']}` (float32, CPU), greedy few-shot CoT ({SHOTS} of lmsi's exemplars), first "
        f"{meta['limit']} test items per task. lmsi: `lmsi eval`, backend hf. lm-eval {meta['lm_eval']}: "
        "`--model hf` with the task YAMLs in `benchmarks/lmeval_tasks/` (the same prompt text, built by lm-eval's "
        "templates; the same stop sequences and token cap; lm-eval's stock regex filters and exact_match).",
        "",
        "Accuracy % [95% bootstrap CI]; *same text*: items where both harnesses generated the identical "
        "completion; *agreement*: items where the two verdicts (correct or not) agree.",
        "",
        "| task | n | lmsi | lm-eval filter | lm-eval | same text | agreement | agreement on same text |",
        "|---|---:|---|---|---|---:|---:|---:|",
    ]
    for r in results:
        same = r["same_text"]
        for name, f in r["filters"].items():
            lines.append(
                f"| {r['task']} | {r['n']} | {ci(r['lmsi'])} | {name} | {ci(f['acc'])} | "
                f"{sum(same)}/{len(same)} | {pct(sum(f['agree']) / len(f['agree']))}% | "
                f"{pct(sum(f['agree_same']) / max(1, len(f['agree_same'])))}% ({len(f['agree_same'])}) |"
            )
    lines += [
        "",
        "Gold answers aligned item by item: " + ", ".join(f"{r['task']} {r['gold_aligned']}" for r in results),
    ]
    lines += ["", "## Disagreements", "", "Item (lm-eval doc_id, lmsi id): extracted answer and verdict on each side."]
    for r in results:
        for name, f in r["filters"].items():
            lines += ["", f"**{r['task']}, {name}**: {len(f['diffs'])} item(s)", ""]
            for d in f["diffs"][:40]:
                lines.append(
                    f"- {d['doc_id']} `{d['id']}` same text: {d['same_text']}; lmsi {d['lmsi'][0]!r} "
                    f"({'right' if d['lmsi'][1] else 'wrong'}), lm-eval {d['lm_eval'][0]!r} "
                    f"({'right' if d['lm_eval'][1] else 'wrong'})"
                )
    lines += ["", "## Commands", "", "```", *commands, "```", ""]
    lines += [f"Wall time (s, both harnesses side by side on a shared 2-core CPU): {json.dumps(meta['seconds'])}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--model", default="embedded:qwen2.5-coder-0.5b")
    ap.add_argument("--data-dir", default="../shared/data", help="benchmark copies (relative: to the repo root)")
    ap.add_argument("--out", default="runs/lmeval-crosscheck", help="run folders (relative: to the repo root)")
    ap.add_argument("--report", default=None, help="markdown (default OUT/lmeval-crosscheck-<date>.md)")
    ap.add_argument("--max-gen-toks", type=int, default=None, help="override both harnesses' token caps")
    ap.add_argument("--batch-size", default="16", help="lm-eval's --batch_size (a number or auto)")
    ap.add_argument("--batch-rows", type=int, default=128, help="lmsi's sample.batch_rows")
    args = ap.parse_args(argv)
    out = Path(args.out) if Path(args.out).is_absolute() else ROOT / args.out
    data = Path(args.data_dir) if Path(args.data_dir).is_absolute() else ROOT / args.data_dir
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "LMSI_DATA": str(data.resolve()),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    folder = resolve_model(args.model)
    shown = folder.replace(str(Path.home()), "~")
    commands, seconds, results = [], {}, []
    for task in args.tasks:
        tokens = args.max_gen_toks or TASKS[task]
        ours, theirs = out / f"lmsi-{task}", out / f"lmeval-{task}"
        a = lmsi_cmd(task, args.model, args.limit, tokens, ours, args.batch_rows)
        b = lmeval_cmd(task, folder, args.limit, tokens, theirs, str(data.resolve()), args.batch_size)
        todo = {} if (ours / "eval" / "greedy_cot.jsonl").exists() else {f"lmsi {task}": a}
        if not glob.glob(str(theirs / "*" / "results_*.json")):
            todo[f"lm-eval {task}"] = b
        seconds |= run(todo, env, lambda s: print(s, flush=True)) if todo else {}
        for cmd in (a, b):
            text = shlex.join(cmd).replace(str(ROOT) + "/", "").replace(str(data.resolve()), args.data_dir)
            commands.append(text.replace(folder, shown))
        rows = read_jsonl(ours / "eval" / "greedy_cot.jsonl")
        assert len(rows) == args.limit or not args.limit, f"{task}: {len(rows)} lmsi rows, --limit {args.limit}"
        get_task(task)  # fails early on an unknown task name
        results.append(compare(task, rows, lmeval_samples(theirs, task)))
    import lm_eval

    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "model": args.model,
        "limit": args.limit,
        "lm_eval": getattr(lm_eval, "__version__", "?"),
        "seconds": seconds,
    }
    report = Path(args.report) if args.report else out / f"lmeval-crosscheck-{meta['date']}.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render(results, commands, meta))
    summary = {
        r["task"]: {name: round(sum(f["agree"]) / len(f["agree"]), 4) for name, f in r["filters"].items()}
        | {"same_text": round(sum(r["same_text"]) / len(r["same_text"]), 4)}
        for r in results
    }
    (report.with_suffix(".json")).write_text(json.dumps(summary, indent=2))
    print(f"wrote {report}\n{json.dumps(summary, indent=2)}")


if __name__ == "__main__":
    main()
