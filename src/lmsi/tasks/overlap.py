"""Near-duplicate questions between two sets: the contamination guard's test (lmsi.contamination
holds its policy) and the tasks' own split hygiene.

Every eval question's word 8-grams are looked up in the pool; if at least half of them occur in one pool question
the pair is a near-duplicate, unless the two carry different numbers (a templated math
problem with other numbers is a different problem, not a leak). N-grams shared by many pool questions (prompt templates such
as ANLI's fixed instruction or 'Answer Choices:') are ignored so they do not count as overlap.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from .base import Example

N, SHARE = 8, 0.5


def ngrams(text: str, n: int = N) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    if len(words) <= n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def numbers(text: str) -> list[str]:
    return re.findall(r"\d+(?:\.\d+)?", text.replace(",", ""))


def find_overlap(pool: list[Example], evals: list[Example], n: int = N, share: float = SHARE) -> list[dict]:
    """[{eval_id, pool_id, share}] for each eval question that near-duplicates a pool question."""
    index: dict[tuple, list[int]] = defaultdict(list)
    for j, q in enumerate(pool):
        for g in ngrams(q.question, n):
            index[g].append(j)
    common = max(2, len(pool) // 20)  # template n-grams: in more than 5% of the pool
    found = []
    for e in evals:
        grams = [g for g in ngrams(e.question, n) if len(index.get(g, ())) <= common]
        if not grams:
            continue
        hits = Counter(j for g in grams for j in index.get(g, ()))
        for j, k in hits.most_common(3):
            if k / len(grams) >= share and numbers(pool[j].question) == numbers(e.question):
                found.append({"eval_id": e.id, "pool_id": pool[j].id, "share": round(k / len(grams), 3)})
                break
    return found
