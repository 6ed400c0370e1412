"""Tasks over a passage or a claim: StrategyQA (yes/no), ANLI R1-R3 (3-way NLI), DROP (free text)."""

from __future__ import annotations

import hashlib

from .base import GOLD_SEP, Example, Task
from .data import data_file, read_records, take
from .exemplars import DROP_EXEMPLARS, NLI_EXEMPLARS, STRATEGY_EXEMPLARS

YES_NO = {"yes": "yes", "no": "no", "true": "yes", "false": "no"}


class StrategyQA(Task):
    """The official train set as the authors' 90/10 split: train (2,061) and dev (229)."""

    name, version, exemplars, answer_type, labels = "strategyqa", 1, STRATEGY_EXEMPLARS, "label", YES_NO
    split_names = ("train", "dev")
    unlabeled_split, eval_split = "train", "dev"

    def load(self, split, limit=None):
        self.check_split(split)
        return take(
            [
                Example(r["qid"], r["question"].strip(), "yes" if r["answer"] else "no")
                for _, r in read_records(data_file(f"strategyqa/{split}.json"))
            ],
            limit,
        )


NLI_LABELS = {"e": "yes", "c": "no", "n": "it is not possible to tell"}


class ANLI(Task):
    """One ANLI round; no train split exists here, so dev is the unlabeled pool and test is eval."""

    version, exemplars, answer_type = 1, NLI_EXEMPLARS, "label"
    labels = {
        **YES_NO,
        "it is not possible to tell": NLI_LABELS["n"],
        "not possible to tell": NLI_LABELS["n"],
        "impossible to tell": NLI_LABELS["n"],
        "cannot tell": NLI_LABELS["n"],
        "maybe": NLI_LABELS["n"],
    }
    split_names = ("dev", "test")
    unlabeled_split, eval_split = "dev", "test"

    def __init__(self, round_: int = 1):
        self.round = round_
        self.name = f"anli_r{round_}"

    def load(self, split, limit=None):
        self.check_split(split)
        return take(
            [
                Example(
                    r["uid"],
                    f"Premise: {r['context'].strip()}\nHypothesis: {r['hypothesis'].strip()}\n"
                    "Does the premise imply the hypothesis? Answer yes, no, or it is not possible to tell.",
                    NLI_LABELS[r["label"]],
                )
                for _, r in read_records(data_file(f"anli/R{self.round}/{split}.jsonl"))
            ],
            limit,
        )


class DROP(Task):
    """DROP dev only (no train copy exists here). 'train' and 'test' split it by passage
    (a stable hash), so no passage is in both; 'dev' is all 9,536 questions."""

    name, version, exemplars, answer_type = "drop", 1, DROP_EXEMPLARS, "text"
    split_names = ("train", "test", "dev")

    def load(self, split, limit=None):
        self.check_split(split)
        out = []
        for i, (_, r) in enumerate(read_records(data_file("drop/drop_v0_dev.jsonl"))):
            passage = r["context"].split("\nQuestion: ", 1)[0]
            half = int(hashlib.sha1(passage.encode()).hexdigest(), 16) % 2
            if split == "dev" or half == (split == "test"):
                question = r["context"].removesuffix("\nAnswer:").strip()
                golds = GOLD_SEP.join(g.strip() for g in r["ref_text"].split("|"))
                out.append(Example(f"drop-{i}", question, golds))
        return take(out, limit)
