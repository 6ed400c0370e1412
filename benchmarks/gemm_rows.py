"""Does a GEMM row's result depend on how many rows share the call? The reason greedy rows
decode in a fixed-shape batch of their own (backends/hf.py) instead of riding along with the
sampled rows, whose count changes every step.

    python benchmarks/gemm_rows.py [--out benchmarks/results]

For each dtype, thread count and Linear shape of Qwen2.5-0.5B (hidden 896, MLP 4864, q/k/v 1152),
it multiplies the same first row inside batches of M = 2..96 rows and lists the M at which that
row's output is not bitwise equal to its output at M = 2 (M = 1 takes a matrix-vector path
everywhere and is left out). Writes gemm-rows-<time>.md.
"""

from __future__ import annotations

import argparse

import torch

from lmsi.bench import cpu_name, save_result

SHAPES = [(896, 4864), (4864, 896), (896, 1152)]
ROWS = list(range(2, 65)) + [80, 96]


def differing(dtype, threads: int, k: int, n: int) -> list[int]:
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(n, k, generator=g) * 0.02).to(dtype)
    x = torch.randn(max(ROWS), k, generator=g).to(dtype)
    ref = torch.nn.functional.linear(x[:2], w)[0]
    return [m for m in ROWS if not torch.equal(torch.nn.functional.linear(x[:m], w)[0], ref)]


def _ranges(ms: list[int]) -> str:
    if not ms:
        return "none"
    out, start = [], ms[0]
    for a, b in zip(ms, ms[1:] + [None]):
        if b != a + 1 or (b is not None and b > 64):
            out.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    return ", ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    lines = ["| dtype | threads | Linear in -> out | row counts M where row 0 differs from M=2 |", "|---|---:|---|---|"]
    for dtype in (torch.float32, torch.bfloat16):
        for threads in (1, 2):
            for k, n in SHAPES:
                ms = differing(dtype, threads, k, n)
                lines.append(
                    f"| {str(dtype)[6:]} | {threads} | {k} -> {n} | {_ranges(ms)} ({len(ms)} of {len(ROWS)}) |"
                )
                print(lines[-1], flush=True)
    text = f"Machine: {cpu_name()}, torch {torch.__version__}. M tried: 2-64, 80, 96.\n\n" + "\n".join(lines)
    out = save_result(text, "python benchmarks/gemm_rows.py", args.out, "gemm-rows", "GEMM rows and batch size")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
