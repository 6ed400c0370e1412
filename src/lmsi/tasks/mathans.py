"""Competition-math answers (`answer_type=math`): the final boxed or stated answer, one
canonical string per equivalence class, and equivalence through `math-verify`.

Extraction reads the last `\\boxed{...}` (braces balanced, so `\\boxed{\\frac{1}{2}}` is whole)
or, when no box comes after it, the statement after the last "the answer is". The answer is
parsed by math-verify's LaTeX grammar (latex2sympy, an ANTLR parser) and written back as the
LaTeX of its evaluated sympy value: `1/2`, `0.5`, `\\dfrac12` and `50\\%` all become `\\frac{1}{2}`,
so the vote stays plain string equality. What does not parse keeps a normalised LaTeX string.

Safety: only the LaTeX extractor is used. math-verify's plain-expression extractor hands text to
sympy's `parse_expr`, which calls `eval`; we never enable it and never `sympify` a string.
Powers and factorials too big to evaluate stay unevaluated and are compared as strings, so a
`2^{2^{2^{99}}}` cannot hang a run. math-verify's timeouts use SIGALRM, which works only in the
main thread: elsewhere they are switched off (the length and size guards still hold).
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from ..io import InputError
from .extract import answer_clause

MAX_ANSWER_CHARS = 300  # longer "answers" are not parsed: a normalised string is their canonical form
MAX_EXPONENT = 1000  # integer powers/factorials past this stay unevaluated
TIMEOUT_S = 3
_BOX = re.compile(r"\\(?:boxed|fbox)\s*")
_ANSWER_IS = re.compile(r"answer\s+is", re.I)
_TEXT = re.compile(r"^\\(?:text|textbf|mathrm|mbox)\{([A-Za-z][A-Za-z ]*)\}$|^([A-Za-z][A-Za-z ]+)$")


def _braced(text: str, i: int) -> tuple[str, int] | None:
    """The contents of the brace group opening at text[i] and the index after it."""
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c == "{" and (j == 0 or text[j - 1] != "\\"):
            depth += 1
        elif c == "}" and (j == 0 or text[j - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[i + 1 : j], j + 1
    return None  # unbalanced: a cut-off completion


def boxes(text: str) -> list[tuple[int, str]]:
    """(position, contents) of every top-level `\\boxed{...}` / `\\fbox{...}` (also `\\boxed 5`)."""
    out, at = [], 0
    while m := _BOX.search(text, at):
        if m.end() < len(text) and text[m.end()] == "{":
            got = _braced(text, m.end())
            if got is None:
                break
            out.append((m.start(), got[0]))
            at = got[1]
        else:
            word = re.match(r"[^\s$.,]+", text[m.end() :])
            if word and m.group(0).endswith(" "):
                out.append((m.start(), word.group(0)))
            at = m.end()
    return out


def final_answer(completion: str) -> str | None:
    """The raw final answer: the last box unless a later 'the answer is' states one without a box."""
    found = boxes(completion)
    said = list(_ANSWER_IS.finditer(completion))
    if found and (not said or found[-1][0] >= said[-1].start()):
        raw = found[-1][1]
    else:
        raw = answer_clause(completion)
        if raw is None:
            return None
        raw = re.split(r"\.(?!\d)", raw)[0]  # the sentence's full stop, not a decimal point
    raw = raw.strip().strip("$").strip()
    raw = re.sub(r"^\\\(|\\\)$|^\\\[|\\\]$", "", raw).strip()
    return raw or None


def normalize_latex(s: str) -> str:
    """The fallback canonical form: spacing, sizing and display variants removed."""
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\\left|\\right|\\[,;:!]|\\quad|\\qquad|~|\\displaystyle", "", s)
    s = re.sub(r"\\(?:text|mathrm|mbox|textbf)\{([^{}]*)\}", r"\1", s)
    return re.sub(r"\s+", "", s).rstrip(".").lower()


def _timeout() -> int | None:
    return TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def _mv():
    try:
        import math_verify
    except ImportError:
        raise InputError("answer_type=math needs math-verify: pip install 'math-verify>=0.9'") from None
    return math_verify


def _parse(answer: str):
    """math-verify's parse of one answer string with the LaTeX grammar only: [] when it fails."""
    mv = _mv()
    return mv.parse(f"${answer}$", [mv.LatexExtractionConfig()], parsing_timeout=_timeout())


class _TooBig(Exception):
    pass


def _value(expr):
    """The value sympy evaluates an (unevaluated) parse to, floats made exact rationals.
    Raises _TooBig before evaluating a power or factorial whose result would be huge."""
    import sympy

    if not isinstance(expr, sympy.Basic):
        return expr
    expr = expr.xreplace({f: sympy.Rational(str(f)) for f in expr.atoms(sympy.Float)})

    def big(a) -> bool:
        return a.is_Number and abs(a) > MAX_EXPONENT

    def rebuild(e):
        if not e.args or isinstance(e, sympy.Symbol | sympy.Number):
            return e
        if isinstance(e, sympy.UnevaluatedExpr):  # latex2sympy's percent: 50% is 50 * (1/100)
            return rebuild(e.args[0])
        args = [rebuild(a) for a in e.args]
        if isinstance(e, sympy.Pow) and big(args[1]) and not args[0].is_Symbol:
            raise _TooBig
        if isinstance(e, sympy.factorial | sympy.binomial | sympy.gamma) and any(big(a) for a in args):
            raise _TooBig
        return e.func(*args)

    out = rebuild(expr)
    if isinstance(out, sympy.Eq) and isinstance(out.lhs, sympy.Symbol):
        out = out.rhs  # "x = 3" votes with "3"
    return out


@lru_cache(maxsize=4096)
def canonical_math(answer: str | None) -> str | None:
    """One string per equivalence class: the LaTeX of the evaluated value, else normalised LaTeX."""
    if answer is None or not answer.strip():
        return None
    answer = answer.strip()
    words = _TEXT.match(answer)
    if words or len(answer) > MAX_ANSWER_CHARS:  # names and phrases: 'Evelyn' is no product e*e*l*n*v*y
        return " ".join((words.group(1) or words.group(2)).lower().split()) if words else normalize_latex(answer)
    import sympy

    parsed = [p for p in _parse(answer) if isinstance(p, sympy.Basic | sympy.MatrixBase)]
    if not parsed:
        return normalize_latex(answer) or None
    try:
        return sympy.latex(_value(parsed[0]))
    except Exception:  # _TooBig, and sympy raises many kinds on odd input; the string form still votes
        return normalize_latex(answer) or None


def extract_math(completion: str) -> str | None:
    """The canonical form of a completion's final answer; None abstains."""
    return canonical_math(final_answer(completion))


def gold_math(raw) -> str:
    """A dataset's answer as lmsi keeps it: the last box of a worked solution, else the text."""
    text = str(raw).strip()
    found = boxes(text)
    return (found[-1][1] if found else text).strip().strip("$").strip()


@lru_cache(maxsize=4096)
def math_equal(pred: str | None, gold: str | None) -> bool:
    """math-verify's verify(gold, pred), after a string check; oversized values compare as strings."""
    if pred is None or gold is None:
        return False
    cp, cg = canonical_math(pred), canonical_math(gold)
    if cp is not None and cp == cg:
        return True
    if normalize_latex(pred) == normalize_latex(gold):
        return True
    if max(len(pred), len(gold)) > MAX_ANSWER_CHARS:
        return False
    g, p = _parse(gold), _parse(pred)
    try:
        [_value(x) for x in g + p]  # nothing verify would evaluate is huge
    except Exception:
        return False
    if not g or not p:
        return False
    return bool(_mv().verify(g, p, timeout_seconds=_timeout()))
