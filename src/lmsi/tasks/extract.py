"""Answer extraction and numeric normalisation, as pure functions.

Normalisation for numbers: drop `$`, thousands commas, trailing units and `%`, trailing
`.0`; fractions `a/b` become their decimal value when exact enough. Unparseable -> None,
which the vote treats as an abstention.
"""

from __future__ import annotations

import re
from fractions import Fraction

_NUM = r"-?\$?\s?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?"
_ANSWER_IS = re.compile(r"answer\s+is\s*:?\s*(?:\$?\\boxed\{)?\s*(" + _NUM + ")", re.I)
_ANY_NUM = re.compile(_NUM)


def normalize_number(text: str) -> str | None:
    """'$1,200.00' -> '1200', '3/4' -> '0.75', '-7.50' -> '-7.5'; None if no number."""
    s = text.strip().replace("$", "").replace(",", "").replace(" ", "")
    s = s.rstrip(".%")
    try:
        if "/" in s:
            num, den = s.split("/", 1)
            value = Fraction(num) / Fraction(den)
        else:
            value = Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    if value.denominator == 1:
        return str(value.numerator)
    return format(float(value), ".6g")


def extract_number(completion: str) -> str | None:
    """Prefer the number after 'the answer is'; else None (no guessing from stray numbers)."""
    matches = _ANSWER_IS.findall(completion)
    if not matches:
        return None
    return normalize_number(matches[-1])


def extract_last_number(completion: str) -> str | None:
    """Looser fallback for direct answers: the last number in the text."""
    matches = _ANY_NUM.findall(completion)
    return normalize_number(matches[-1]) if matches else None


def numbers_equal(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    try:
        return abs(Fraction(a) - Fraction(b)) <= Fraction(1, 10**6) * max(1, abs(Fraction(b)))
    except ValueError:
        return a == b


# -- non-numeric answers -----------------------------------------------------
# Every extractor reads only the statement after the LAST "the answer is": text without
# that statement abstains (None) rather than guessing from whatever the model mentioned.
_CLAUSE = re.compile(r"answer\s+is\s*:?\s*", re.I)
_LETTER = re.compile(r"^\(?([A-Z])\)?(?=$|[\s.,:;!)])")
_PAREN_LETTERS = re.compile(r"\(([A-Z])\)")
_PUNCT = re.compile(r"[^\w\s]")


def answer_clause(completion: str) -> str | None:
    """The text after the last 'answer is' that says anything, up to the end of that line.

    A statement with no word in it ('The answer is (' cut off by the token cap) is not an
    answer: the one before it counts, as a number after 'answer is' must be there to count."""
    found = None
    for line in completion.split("\n"):
        for m in _CLAUSE.finditer(line):
            said = line[m.end() :].strip().strip("\"'*`").strip()
            if re.search(r"\w", said):
                found = said
    return found


def _norm(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def extract_choice(completion: str, n_options: int, options: tuple[str, ...] = ()) -> str | None:
    """A letter among the first `n_options`: from '(B)', 'B', 'B)' or the option's text.

    Two different parenthesised letters ('(A) or (C)') are ambiguous and give None."""
    clause = answer_clause(completion)
    if clause is None:
        return None
    letters = [chr(65 + i) for i in range(n_options)]
    named = {x for x in _PAREN_LETTERS.findall(clause) if x in letters}
    if len(named) > 1:
        return None
    m = _LETTER.match(clause)
    if m and m.group(1) in letters:
        return m.group(1)
    if named:
        return named.pop()
    said = f" {_norm(clause)} "
    hits = [(len(o), letters[i]) for i, o in enumerate(options[:n_options]) if _norm(o) and f" {_norm(o)} " in said]
    if not hits:
        return None
    hits.sort(reverse=True)  # "red apple" wins over "apple" when both occur
    longest = [h for h in hits if h[0] == hits[0][0]]
    return longest[0][1] if len(longest) == 1 else None


def extract_label(completion: str, vocab: dict[str, str]) -> str | None:
    """A label whose phrase starts the answer statement ('yes', 'it is not possible to tell')."""
    clause = answer_clause(completion)
    if clause is None:
        return None
    said = _norm(clause)
    for phrase in sorted(vocab, key=len, reverse=True):
        if said == phrase or said.startswith(phrase + " "):
            return vocab[phrase]
    return None


def normalize_text(text: str) -> str:
    """SQuAD/DROP-style: lowercase, numbers canonical, no punctuation, articles or extra spaces."""
    words = []
    for w in text.lower().split():
        core = w.strip(".,;:!?\"'()")
        num = normalize_number(core) if re.fullmatch(r"\$?-?[\d,]*\d(\.\d+)?%?", core) else None
        if num is not None:
            words.append(num)
        else:
            words += [x for x in _PUNCT.sub(" ", w).split() if x not in ("a", "an", "the")]
    return " ".join(words)


def extract_text(completion: str) -> str | None:
    """Free-text answers: the answer statement up to its sentence end, normalised."""
    clause = answer_clause(completion)
    if clause is None:
        return None
    clause = re.split(r"(?<!\d)\.(?!\d)", clause)[0]
    out = normalize_text(clause)
    return out or None


def token_f1(pred: str | None, gold: str) -> float:
    """Bag-of-words F1 between normalised strings (DROP's metric, with multi-span answers
    compared as one bag)."""
    if pred is None:
        return 0.0
    p, g = normalize_text(pred).split(), normalize_text(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum(min(p.count(w), g.count(w)) for w in set(p))
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)
