"""The LM head and loss of SFT, forward and backward, at Qwen2.5-0.5B's shape (hidden 896, vocab
151,936), 300 tokens of which the last 60 are learned: transformers' path (full logits, cross
entropy) against TRL's fused LM head, which without Triton (a CPU) scores every position in chunks
and recomputes the logits in backward. Alternating, 4 timed runs each after 2 warm-ups.

    python benchmarks/lm_head_cpu.py
"""

import time

import torch
import torch.nn.functional as F
from trl.kernels import ChunkedLogProbFunction

torch.manual_seed(0)
H, V, T = 896, 151936, 300
W = torch.randn(V, H) * 0.02  # frozen, as the tied embeddings are under LoRA
labels = torch.randint(0, V, (T,))
labels[:240] = -100


def plain():
    h = torch.randn(T, H, requires_grad=True)
    logits = (h @ W.t()).float()
    (F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum") / (labels != -100).sum()).backward()


def fused():
    h = torch.randn(T, H, requires_grad=True)
    outputs = ("log_probs", "entropy", "is_top1")  # what SFTTrainer asks for
    lp = ChunkedLogProbFunction.apply(h, W, None, labels.clamp(min=0), 1.0, 32768, None, 1.0, outputs)[0]
    (-(lp * (labels != -100)).sum() / (labels != -100).sum()).backward()


for f in (plain, fused, plain, fused):
    f()
times = {"plain": [], "fused": []}
for _ in range(4):
    for name, f in (("plain", plain), ("fused", fused)):
        t = time.perf_counter()
        f()
        times[name].append(time.perf_counter() - t)
for name, v in times.items():
    print(name, " ".join(f"{x:.3f}" for x in v), "median", f"{sorted(v)[2]:.3f}")
