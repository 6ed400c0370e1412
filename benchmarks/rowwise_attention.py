"""Greedy slots' attention: slot by slot (the hf sampler's way) or one batched masked call.

    python benchmarks/rowwise_attention.py [--out benchmarks/results]

One decode step of 32 greedy slots over the 0.5B model's 24 layers (14 query heads, 2 KV heads,
head size 64), slot s holding 420 + 7s keys. Times the per-slot loop of
`scaled_dot_product_attention` and one batched call with every slot's keys in a buffer of fixed
capacity under a mask, and checks whether the batched call gives a slot bitwise the same output
alone, among other slots, and with garbage past its length (what batch-invariant greedy needs).
Writes rowwise-attention-<time>.md.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from lmsi.bench import cpu_name, save_result

SLOTS, HEADS, KV_HEADS, DIM, LAYERS, CAP = 32, 14, 2, 64, 24, 1024


def timed(fn, reps: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(LAYERS):
            fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results")
    a = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    q = torch.randn(SLOTS, HEADS, 1, DIM, generator=g)
    k = torch.randn(SLOTS, KV_HEADS, CAP, DIM, generator=g)
    v = torch.randn(SLOTS, KV_HEADS, CAP, DIM, generator=g)
    lens = [420 + 7 * s for s in range(SLOTS)]
    mask = torch.zeros(SLOTS, 1, 1, CAP, dtype=torch.bool)
    for s, n in enumerate(lens):
        mask[s, ..., :n] = True

    def per_slot():
        out = torch.empty_like(q)
        for s, n in enumerate(lens):
            out[s : s + 1] = F.scaled_dot_product_attention(
                q[s : s + 1], k[s : s + 1, :, :n], v[s : s + 1, :, :n], enable_gqa=True
            )
        return out

    def batched(q=q, k=k, v=v, mask=mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)

    full = batched()
    others = k.clone()
    others[1:] = torch.randn(SLOTS - 1, KV_HEADS, CAP, DIM, generator=g)
    garbage = k.clone()
    garbage[0, :, lens[0] :] = 1e3
    checks = {
        "alone": torch.equal(batched(q[:1], k[:1], v[:1], mask[:1])[0], full[0]),
        "other slots changed": torch.equal(batched(k=others)[0], full[0]),
        "garbage past its length": torch.equal(batched(k=garbage)[0], full[0]),
    }
    text = (
        f"Machine: {cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, float32.\n\n"
        f"| attention of one decode step ({LAYERS} layers, {SLOTS} slots) | ms (best of 3) |\n|---|---|\n"
        f"| slot by slot (hf sampler) | {timed(per_slot):.1f} |\n"
        f"| one batched masked call, capacity {CAP} | {timed(batched):.1f} |\n\n"
        "Batched call, slot 0 bitwise equal to its output among 32 slots: "
        + ", ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in checks.items())
        + "\n"
    )
    print(text)
    print(
        save_result(
            text, "python benchmarks/rowwise_attention.py", a.out, "rowwise-attention", "Greedy slots' attention"
        )
    )


if __name__ == "__main__":
    main()
