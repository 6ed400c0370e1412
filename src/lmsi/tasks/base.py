"""What a task is: examples, exemplars, prompt formats, answer extraction and scoring.

A task's `answer_type` picks the extractor and the comparison:
  number  the number after "the answer is"; exact comparison after normalisation
  choice  a letter, "(B)" or the option's text; gold is a letter
  label   a phrase from `labels` (yes/no, NLI); gold is the canonical label
  text    the answer statement, DROP-normalised; exact match and token F1 against any gold
  math    the last \\boxed{...} or stated answer, canonical LaTeX; equivalence by math-verify
"""

from __future__ import annotations

from dataclasses import dataclass

from ..io import InputError
from .extract import (
    extract_choice,
    extract_label,
    extract_number,
    extract_text,
    normalize_text,
    numbers_equal,
    token_f1,
)
from .mathans import extract_math, math_equal

ZERO_SHOT_COT_CUE = "Let's think step by step."
FORMATS = ("fewshot_cot", "fewshot_direct", "zeroshot_cot", "zeroshot_direct")
ANSWER_TYPES = ("number", "choice", "yesno", "text", "math")  # what a file:/hf: task may declare
GOLD_SEP = "|"  # text tasks: several accepted gold answers joined by '|'


@dataclass(frozen=True)
class Example:
    id: str
    question: str  # the full text the model sees: passage and answer choices included
    answer: str | None = None  # gold; used only by evaluation and diagnostics
    choices: tuple[str, ...] = ()  # option texts for choice tasks, lettered A, B, ... in order


@dataclass(frozen=True)
class Exemplar:
    question: str
    reasoning: str
    answer: str


def with_choices(stem: str, options) -> str:
    """The question text for a choice task: the stem, then '(A) ... (B) ...'."""
    return stem.strip() + "\nAnswer Choices: " + " ".join(f"({chr(65 + i)}) {o.strip()}" for i, o in enumerate(options))


class Task:
    """Subclasses set `name`, `version`, `exemplars`, `answer_type`, `split_names` and `load`."""

    name = "task"
    version = 1
    answer_type = "number"
    exemplars: tuple[Exemplar, ...] = ()
    labels: dict[str, str] = {}  # label tasks: phrase the model may say -> canonical label
    split_names: tuple[str, ...] = ("train", "test")
    unlabeled_split, eval_split = "train", "test"  # what `auto` means in the config

    def load(self, split: str, limit: int | None = None) -> list[Example]:
        raise NotImplementedError

    def splits(self) -> dict[str, int]:
        return {s: len(self.load(s)) for s in self.split_names}

    def check_split(self, split: str) -> None:
        if split not in self.split_names:
            raise InputError(f"task {self.name!r} has splits {list(self.split_names)}, not {split!r}")

    def resolve_split(self, split: str, role: str) -> str:
        """'auto' -> the task's own unlabeled or eval split; any name is checked."""
        split = {"unlabeled": self.unlabeled_split, "eval": self.eval_split}[role] if split == "auto" else split
        self.check_split(split)
        return split

    # -- prompts --------------------------------------------------------
    def show(self, answer: str) -> str:
        """How an answer is written after 'The answer is'."""
        if self.answer_type == "math":
            return f"\\boxed{{{answer}}}"
        return f"({answer})" if self.answer_type == "choice" else answer

    def prompt(self, question: str, fmt: str, shots: int) -> str:
        """The prompt for one of the four formats; the model continues after 'A:'."""
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
        cot = fmt.endswith("cot")
        head = ""
        if fmt.startswith("fewshot"):
            for ex in self.exemplars[:shots]:
                said = self.show(ex.answer)
                body = f"{ex.reasoning} The answer is {said}." if cot else f"The answer is {said}."
                head += f"Q: {ex.question}\nA: {body}\n\n"
        tail = f"Q: {question}\nA:"
        if fmt == "zeroshot_cot":
            tail += " " + ZERO_SHOT_COT_CUE
        elif not cot:
            tail += " The answer is"
        return head + tail

    def target(self, reasoning: str, answer: str, fmt: str) -> str:
        """The completion a training row teaches for a given format."""
        if fmt.endswith("cot"):
            return f" {reasoning.strip()} The answer is {self.show(answer)}."
        return f" {self.show(answer)}."

    stop = ("\n\nQ:", "\nQ:", "\n\n\n")

    def answer_space(self, example: Example) -> int | None:
        """How many different answers a path can give: the options of a choice question, the
        labels of a label task; None for open answers (numbers, text, math)."""
        if self.answer_type == "choice":
            return len(example.choices) or None
        if self.answer_type == "label":
            return len(set(self.labels.values())) or None
        return None

    # -- scoring --------------------------------------------------------
    def extract(self, completion: str, fmt: str = "fewshot_cot", choices: tuple[str, ...] = ()) -> str | None:
        """The answer a completion gives, normalised so equal answers vote together; None abstains."""
        if fmt.endswith("direct"):  # the prompt ended in 'The answer is': read its first line
            completion = "The answer is " + completion.strip().split("\n")[0]
        if self.answer_type == "number":
            return extract_number(completion)
        if self.answer_type == "choice":
            return extract_choice(completion, len(choices) or 5, choices)
        if self.answer_type == "label":
            return extract_label(completion, self.labels)
        if self.answer_type == "math":
            return extract_math(completion)
        return extract_text(completion)

    def is_correct(self, pred: str | None, gold: str | None) -> bool:
        if pred is None or gold is None:
            return False
        if self.answer_type == "number":
            return numbers_equal(pred, gold)
        if self.answer_type == "math":
            return math_equal(pred, gold)
        if self.answer_type == "text":
            return any(normalize_text(pred) == normalize_text(g) for g in gold.split(GOLD_SEP))
        return pred == gold

    def f1(self, pred: str | None, gold: str | None) -> float | None:
        """Token F1 for text tasks (None elsewhere): the best over the accepted golds."""
        if self.answer_type != "text" or gold is None:
            return None
        return max(token_f1(pred, g) for g in gold.split(GOLD_SEP))

    @staticmethod
    def reasoning_of(completion: str) -> str:
        """The reasoning before 'The answer is', reused to build CoT training targets."""
        i = completion.lower().rfind("the answer is")
        if i == -1 and (j := completion.rfind("\\boxed")) != -1:  # math: cut the sentence that boxes it
            i = max(completion.rfind(". ", 0, j) + 1, completion.rfind("\n", 0, j), 0)
        return (completion[:i] if i != -1 else completion).strip()
