"""Any dataset as a task: a JSONL/JSON/CSV/TSV file, a saved `datasets` folder, or a hub id.

    file:questions.jsonl         question_field=question answer_field=answer
    hf:openai/gsm8k:main         (needs network; split from data.split)

answer_type is number | choice | yesno | text | math. A math gold is LaTeX (`\\frac{3}{4}`,
`[0, 1)`) or a worked solution whose last `\\boxed{}` is the answer. Choices may be a list of strings, a list of
{label, text}, a {label: [...], text: [...]} mapping or one '(A) x (B) y' string; a choice
gold may be a letter, '(B)', a 0-based index or the option text.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..io import InputError
from .base import ANSWER_TYPES, GOLD_SEP, Example, Task, with_choices
from .data import read_records, take
from .exemplars import COMMONSENSE_EXEMPLARS, COMPETITION_EXEMPLARS, MATH_EXEMPLARS, STRATEGY_EXEMPLARS
from .extract import normalize_number
from .mathans import gold_math
from .reading import DROP_EXEMPLARS, YES_NO

MAX_QUESTION_CHARS = 50_000  # far past any benchmark question (DROP passages ~3k) and most context windows
_EXEMPLARS = {
    "number": MATH_EXEMPLARS,
    "choice": COMMONSENSE_EXEMPLARS,
    "yesno": STRATEGY_EXEMPLARS,
    "text": DROP_EXEMPLARS,
    "math": COMPETITION_EXEMPLARS,
}


def _options(raw, where: str) -> tuple[str, ...]:
    if isinstance(raw, str):
        parts = re.split(r"\(?\b([A-Z])\)\s*", raw)[1:]
        opts = [o.strip() for o in parts[1::2]]
    elif isinstance(raw, dict) and "text" in raw:
        opts = list(raw["text"])
    elif isinstance(raw, list):
        opts = [o["text"] if isinstance(o, dict) else o for o in raw]
    else:
        opts = []
    if len(opts) < 2 or not all(isinstance(o, str) for o in opts):
        raise InputError(
            f"{where}: choices must be 2+ options (list of strings, [{{label, text}}] or '(A) x (B) y'), got {raw!r}"[
                :300
            ]
        )
    return tuple(opts)


def _choice_gold(raw, options: tuple[str, ...], where: str) -> str:
    letters = [chr(65 + i) for i in range(len(options))]
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(options):
        return letters[raw]
    if isinstance(raw, str):
        s = raw.strip().strip("()").strip()
        if s.upper() in letters and len(s) == 1:
            return s.upper()
        for i, o in enumerate(options):
            if o.strip().lower() == raw.strip().lower():
                return letters[i]
    raise InputError(f"{where}: answer {raw!r} is not a letter A-{letters[-1]}, an index or one of the options")


class FileTask(Task):
    version = 1

    def __init__(
        self,
        spec: str,
        question_field: str = "question",
        answer_field: str = "answer",
        choices_field: str = "choices",
        answer_type: str = "number",
    ):
        if answer_type not in ANSWER_TYPES:
            raise InputError(f"answer_type {answer_type!r}; choose one of {ANSWER_TYPES}")
        self.spec, self.qf, self.af, self.cf, self.kind = spec, question_field, answer_field, choices_field, answer_type
        self.name = spec
        self.answer_type = {"yesno": "label"}.get(answer_type, answer_type)
        self.labels = YES_NO if answer_type == "yesno" else {}
        self.exemplars = _EXEMPLARS[answer_type]
        self.hub = spec.startswith("hf:")
        self.split_names = ("train", "validation", "test") if self.hub else ("all",)
        self.unlabeled_split, self.eval_split = ("train", "test") if self.hub else ("all", "all")

    def check_split(self, split):
        if not self.hub:
            super().check_split(split)

    # -- reading ----------------------------------------------------------
    def _records(self, split: str) -> tuple[str, list[tuple[int, dict]]]:
        if self.hub:
            try:
                import datasets
            except ImportError:
                raise InputError("hub datasets need the `datasets` package: pip install datasets") from None
            ident, _, config = self.spec[3:].partition(":")
            ds = datasets.load_dataset(ident, config or None, split=split)
            return f"{ident}[{split}]", [(i, dict(r)) for i, r in enumerate(ds)]
        path = Path(self.spec.removeprefix("file:"))
        if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
            import datasets  # a folder written by Dataset(Dict).save_to_disk

            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    split = next(iter(ds)) if split == "all" else split
                    if split not in ds:
                        raise InputError(f"{path}: no split {split!r}; it has {list(ds)}")
                ds = ds[split]
            return str(path), [(i, dict(r)) for i, r in enumerate(ds)]
        if not path.is_file():
            raise InputError(f"{path}: dataset file not found")
        return str(path), read_records(path)

    def load(self, split="all", limit=None):
        where, rows = self._records(split)
        out, seen = [], set()
        for line, r in rows:
            at = f"{where}:{line}"
            q = r.get(self.qf)
            if not isinstance(q, str):
                raise InputError(f"{at}: field {self.qf!r} missing or not a string (fields: {sorted(r)})")
            if not q.strip():
                raise InputError(f"{at}: empty question in field {self.qf!r}")
            if len(q) > MAX_QUESTION_CHARS:
                raise InputError(
                    f"{at}: question is {len(q):,} characters; the limit is {MAX_QUESTION_CHARS:,} "
                    "(a whole document in one field?)"
                )
            rid = str(r.get("id", f"{Path(where).stem}-{line}"))
            if rid in seen:
                raise InputError(f"{at}: duplicate id {rid!r}")
            seen.add(rid)
            out.append(self._example(rid, q, r, at))
        if not out:
            raise InputError(f"{where}: no questions found")
        return take(out, limit)

    def _example(self, rid: str, q: str, r: dict, at: str) -> Example:
        raw = r.get(self.af)
        if self.kind == "choice":
            options = _options(r.get(self.cf), f"{at}: field {self.cf!r}")
            gold = None if raw in (None, "") else _choice_gold(raw, options, f"{at}: field {self.af!r}")
            return Example(rid, with_choices(q, options), gold, options)
        if raw is None or raw == "":
            return Example(rid, q.strip(), None)
        if self.kind == "number":
            if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
                raise InputError(f"{at}: field {self.af!r} must be a number, got {raw!r}"[:200])
            gold = normalize_number(str(raw).split("####")[-1])
            if gold is None:
                raise InputError(f"{at}: field {self.af!r} is not a number: {raw!r}"[:200])
        elif self.kind == "math":
            if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
                raise InputError(f"{at}: field {self.af!r} must be a LaTeX string or a number, got {raw!r}"[:200])
            gold = gold_math(raw)
        elif self.kind == "yesno":
            gold = YES_NO.get(str(raw).strip().lower()) if not isinstance(raw, bool) else ("yes" if raw else "no")
            if gold is None:
                raise InputError(f"{at}: field {self.af!r} must be yes/no/true/false, got {raw!r}"[:200])
        else:
            gold = GOLD_SEP.join(map(str, raw)) if isinstance(raw, list) else str(raw)
        return Example(rid, q.strip(), gold)
