"""What a task is: examples, exemplars, prompt formats, extraction and scoring."""

from __future__ import annotations

from dataclasses import dataclass

from .extract import extract_last_number, extract_number, numbers_equal

ZERO_SHOT_COT_CUE = "Let's think step by step."
FORMATS = ("fewshot_cot", "fewshot_direct", "zeroshot_cot", "zeroshot_direct")


@dataclass(frozen=True)
class Example:
    id: str
    question: str
    answer: str | None = None  # gold; used only by evaluation and diagnostics


@dataclass(frozen=True)
class Exemplar:
    question: str
    reasoning: str
    answer: str


class Task:
    """A numeric-answer task; subclasses set `name`, `version`, `exemplars` and `load`."""

    name = "task"
    version = 1
    exemplars: tuple[Exemplar, ...] = ()

    def load(self, split: str, limit: int | None = None) -> list[Example]:
        raise NotImplementedError

    def splits(self) -> dict[str, int]:
        return {}

    # -- prompts --------------------------------------------------------
    def prompt(self, question: str, fmt: str, shots: int) -> str:
        """The prompt for one of the four formats; the model continues after 'A:'."""
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
        cot = fmt.endswith("cot")
        head = ""
        if fmt.startswith("fewshot"):
            for ex in self.exemplars[:shots]:
                body = f"{ex.reasoning} The answer is {ex.answer}." if cot else f"The answer is {ex.answer}."
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
            return f" {reasoning.strip()} The answer is {answer}."
        return f" {answer}."

    stop = ("\n\nQ:", "\nQ:", "\n\n\n")

    # -- scoring --------------------------------------------------------
    def extract(self, completion: str, fmt: str = "fewshot_cot") -> str | None:
        if fmt.endswith("direct"):
            # the prompt already ends in 'The answer is', so the number comes first
            head = completion.strip().split("\n")[0]
            return extract_last_number(head.split(".")[0] if head.count(".") > 1 else head)
        return extract_number(completion)

    def is_correct(self, pred: str | None, gold: str | None) -> bool:
        return numbers_equal(pred, gold)

    @staticmethod
    def reasoning_of(completion: str) -> str:
        """The reasoning before 'The answer is', reused to build CoT training targets."""
        i = completion.lower().rfind("the answer is")
        return (completion[:i] if i != -1 else completion).strip()


# Math exemplars written for lmsi (short, varied operations) and shared by numeric tasks.
MATH_EXEMPLARS = (
    Exemplar(
        "A library has 45 books on a shelf. It lends out 12 and receives 8 new ones. How many books are on the shelf now?",
        "It starts with 45 books. After lending 12 it has 45 - 12 = 33. With 8 new ones it has 33 + 8 = 41.",
        "41",
    ),
    Exemplar(
        "Each crate holds 6 melons. A truck carries 7 crates and 5 loose melons. How many melons does the truck carry?",
        "The crates hold 7 * 6 = 42 melons. With the loose ones, 42 + 5 = 47.",
        "47",
    ),
    Exemplar(
        "Nora splits 56 marbles equally among 8 friends, then each friend gets 2 more from her brother. How many marbles does each friend have?",
        "Each friend first gets 56 / 8 = 7 marbles. With 2 more, each has 7 + 2 = 9.",
        "9",
    ),
    Exemplar(
        "A ticket costs $4. Ravi buys tickets for himself and 3 friends and pays with a $20 bill. How much change does he get?",
        "He buys 1 + 3 = 4 tickets, which cost 4 * 4 = 16 dollars. His change is 20 - 16 = 4 dollars.",
        "4",
    ),
)
