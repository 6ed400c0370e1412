"""Multiple-choice QA: ARC-Challenge, OpenBookQA (science, 4 options) and CommonsenseQA (5)."""

from __future__ import annotations

import re

from .base import Example, Task, with_choices
from .data import data_file, read_records, take
from .exemplars import COMMONSENSE_EXEMPLARS, SCIENCE_EXEMPLARS


def _choice_example(id_: str, stem: str, options, gold_index: int | None) -> Example:
    gold = None if gold_index is None else chr(65 + gold_index)
    return Example(id_, with_choices(stem, options), gold, tuple(o.strip() for o in options))


def _from_arc_record(r: dict) -> Example:
    """The original ARC/CSQA record layout: question.stem, question.choices[{label,text}], answerKey."""
    labels = [c["label"] for c in r["question"]["choices"]]
    key = r.get("answerKey")
    return _choice_example(
        r["id"],
        r["question"]["stem"],
        [c["text"] for c in r["question"]["choices"]],
        labels.index(key) if key in labels else None,
    )


class ARCChallenge(Task):
    """test: the reconstructed official 1,172; dev: 294 of 299; train: 1,119 rows recovered
    from an instruction-formatted copy (no ids upstream, so ids are row numbers)."""

    name, version, exemplars, answer_type = "arc_challenge", 1, SCIENCE_EXEMPLARS, "choice"
    split_names = ("train", "dev", "test")
    files = {
        "test": "arc_challenge/ARC-Challenge-Test.reconstructed.jsonl",
        "dev": "arc_challenge/zhouqb_4choice/ARC-Challenge-Dev.jsonl",
        "train": "arc_challenge/llm_adapters/train.json",
    }

    def load(self, split, limit=None):
        self.check_split(split)
        rows = read_records(data_file(self.files[split]))
        if split != "train":
            return take([_from_arc_record(r) for _, r in rows], limit)
        out = []
        for i, r in rows:
            text = r["instruction"].split("question:", 1)[1].split("\n\nAnswer format:")[0]
            stem, opts = text.split("\n\nAnswer1:", 1)
            options = re.split(r"\s*Answer\d+:\s*", "Answer1:" + opts)[1:]
            out.append(_choice_example(f"arc-train-{i}", stem, options, int(r["answer"].removeprefix("answer")) - 1))
        return take(out, limit)


class OpenBookQA(Task):
    name, version, exemplars, answer_type = "openbookqa", 1, SCIENCE_EXEMPLARS, "choice"
    split_names = ("train", "dev", "test")

    def load(self, split, limit=None):
        self.check_split(split)
        out = []
        for _, r in read_records(data_file(f"openbookqa/Main/{split}.tsv")):
            parts = re.split(r"\(([A-Z])\)\s*", r["Choices"])[1:]
            labels, options = parts[0::2], [o.strip() for o in parts[1::2]]
            key = r["Answer Key"].strip()
            out.append(
                _choice_example(r["ID"], r["Question Stem"], options, labels.index(key) if key in labels else None)
            )
        return take(out, limit)


class CommonsenseQA(Task):
    """train/dev are labeled; test has no answers (usable as an unlabeled pool, not for eval)."""

    name, version, exemplars, answer_type = "commonsenseqa", 1, COMMONSENSE_EXEMPLARS, "choice"
    split_names = ("train", "dev", "test")
    unlabeled_split, eval_split = "train", "dev"

    def load(self, split, limit=None):
        self.check_split(split)
        name = {"train": "train_rand_split", "dev": "dev_rand_split", "test": "test_rand_split_no_answers"}[split]
        return take([_from_arc_record(r) for _, r in read_records(data_file(f"commonsenseqa/{name}.jsonl"))], limit)
