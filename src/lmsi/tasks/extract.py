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
