"""answer_type=math: final boxed/stated answers, one canonical string per equivalence class (so the
vote stays string equality), math-verify equivalence, and model text that is never executed."""

import builtins
import json
import threading
import time
import types
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lmsi.cli import app
from lmsi.tasks import get_task
from lmsi.tasks.mathans import canonical_math, extract_math, final_answer, math_equal
from lmsi.vote import majority

TASK = get_task("file:unused.jsonl", answer_type="math")

TABLE = [
    (r"So the probability is \boxed{\frac{1}{2}}.", r"\frac{1}{2}"),  # nested braces
    (r"The answer is $\boxed{\dfrac{1}{2}}$.", r"\frac{1}{2}"),  # \dfrac is \frac
    (r"The answer is \boxed{\tfrac12}.", r"\frac{1}{2}"),
    ("The answer is 0.5.", r"\frac{1}{2}"),  # the full stop is not a decimal point
    (r"The answer is \boxed{50\%}.", r"\frac{1}{2}"),
    (r"The side is \boxed{5\text{ cm}}.", "5"),  # units dropped
    (r"The angle is \boxed{90^\circ}.", "90"),
    (r"First \boxed{3}, then on reflection \boxed{4}.", "4"),  # several boxes: the last
    (r"\boxed{3}. Wait, I made an error: the answer is 7.", "7"),  # a later statement wins
    ("No box here, but the answer is 3/4.", r"\frac{3}{4}"),
    (r"The answer is $\frac{3}{4}$.", r"\frac{3}{4}"),
    ("The answer is 6.0.", "6"),
    (r"The answer is \boxed{1,000}.", "1000"),
    (r"\boxed{\sqrt{8}}", r"2 \sqrt{2}"),
    (r"\boxed{2\sqrt{2}}", r"2 \sqrt{2}"),
    (r"\boxed{\frac{1}{\sqrt{2}}}", r"\frac{\sqrt{2}}{2}"),
    (r"\boxed{[0, 1)}", r"\left[0, 1\right)"),  # intervals
    (r"\boxed{(-\infty, 2]}", r"\left(-\infty, 2\right]"),
    (r"\boxed{\{4, 3\}}", r"\left\{3, 4\right\}"),  # sets, in order
    (r"\boxed{x = 3}", "3"),
    (r"\boxed{\text{Evelyn}}", "evelyn"),  # a name is text, not the product e*v*e*l*y*n
    (r"\boxed{\frac{1}{2}", None),  # cut off inside the box
    ("I am not sure how to finish this.", None),  # no answer at all abstains
    ("", None),
]


@pytest.mark.parametrize("completion,canonical", TABLE)
def test_tricky_outputs(completion, canonical):
    got = TASK.extract(completion)
    assert got == canonical
    if got is not None:
        assert canonical_math(got) == got  # canonical forms are fixed points
        assert TASK.is_correct(got, got)


def test_direct_format_reads_the_first_line():
    assert TASK.extract(r" \boxed{\dfrac{3}{4}}." + "\nQ: next", "fewshot_direct") == r"\frac{3}{4}"


@pytest.mark.parametrize(
    "a,b",
    [
        ("1/2", "0.5"),
        (r"\frac{1}{2}", "0.5"),
        (r"\dfrac{2}{4}", r"\frac12"),
        (r"\sqrt{8}", r"2\sqrt{2}"),
        (r"\{3, 4\}", r"\{4,3\}"),
        ("[0,1)", r"\left[0, 1\right)"),
        (r"3\frac{1}{2}", "3.5"),
    ],
)
def test_equivalent_forms_share_one_string_and_verify(a, b):
    assert canonical_math(a) == canonical_math(b)
    assert TASK.is_correct(canonical_math(a), b) and TASK.is_correct(canonical_math(b), a)


@pytest.mark.parametrize("a,b", [("2", "3"), (r"\frac{1}{2}", "0.51"), ("[0,1)", "[0,1]"), (r"\sqrt{2}", "2")])
def test_different_answers_differ(a, b):
    assert canonical_math(a) != canonical_math(b)
    assert not TASK.is_correct(canonical_math(a), b)


def test_gold_may_be_a_worked_solution_or_a_number(tmp_path):
    path = tmp_path / "m.jsonl"
    rows = [
        {"problem": "Halve 1.", "answer": r"\frac{1}{2}"},
        {"problem": "Add 2 and 4.", "answer": 6},
        {"problem": "Solve.", "answer": r"Since $x=2$, we get $\boxed{\{2, -2\}}$."},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = get_task(f"file:{path}", question_field="problem", answer_type="math")
    golds = [e.answer for e in task.load("all")]
    assert golds == [r"\frac{1}{2}", "6", r"\{2, -2\}"]
    assert task.is_correct(task.extract("The answer is 0.5."), golds[0])
    assert task.is_correct(task.extract(r"\boxed{6.0}"), golds[1])
    assert task.is_correct(task.extract(r"The answer is \boxed{\{-2, 2\}}."), golds[2])


def test_prompts_and_targets_box_the_answer():
    p = TASK.prompt("What is $1 + 1$?", "fewshot_cot", 2)
    assert r"The answer is \boxed{\frac{3}{28}}." in p and p.endswith("Q: What is $1 + 1$?\nA:")
    assert (
        TASK.target("One and one make two.", "2", "fewshot_cot") == r" One and one make two. The answer is \boxed{2}."
    )
    assert TASK.reasoning_of(r"One and one make two. So we get \boxed{2}.") == "One and one make two."


# -- the vote ------------------------------------------------------------------------
def _forms(f: Fraction) -> list[str]:
    p, q = f.numerator, f.denominator
    forms = [rf"\frac{{{p}}}{{{q}}}", f"{p}/{q}", rf"\dfrac{{{2 * p}}}{{{2 * q}}}", rf"\boxed{{\tfrac{{{p}}}{{{q}}}}}"]
    if q == 1:
        forms.append(f"{p}.0")
    elif all(d in (2, 5) for d in _prime_factors(q)):
        forms.append(str(float(f)))  # a terminating decimal, written exactly
    return forms


def _prime_factors(n: int) -> list[int]:
    out, d = [], 2
    while d * d <= n:
        while n % d == 0:
            out.append(d)
            n //= d
        d += 1
    return out + ([n] if n > 1 else [])


@settings(max_examples=25, deadline=None)
@given(
    st.fractions(min_value=-50, max_value=50, max_denominator=40),
    st.randoms(use_true_random=False),
)
def test_equivalent_forms_vote_together(f, rnd):
    forms = _forms(f)
    wrong = f + 1
    paths = [f"Some work. The answer is {x}." for x in forms] + [rf"The answer is \boxed{{{wrong}}}."] * 2
    rnd.shuffle(paths)
    answers = [TASK.extract(p) for p in paths]
    assert len(set(answers)) == 2, answers
    answer, share, votes = majority(answers)
    assert votes == len(forms) and answer == canonical_math(rf"\frac{{{f.numerator}}}{{{f.denominator}}}")
    assert TASK.is_correct(answer, f"{f.numerator}/{f.denominator}")


# -- safety ----------------------------------------------------------------------------
PAYLOADS = [
    "__import__('os').system('touch MARKER')",
    '1 + __import__("os").system("touch MARKER")',
    "exec(\"open('MARKER', 'w')\")",
    "(lambda: open('MARKER', 'w'))()",
    r"\text{__import__('os').system('touch MARKER')}",
    "2*(__import__('os').system('touch MARKER'))",
]


def test_malicious_answers_are_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    canonical_math.cache_clear()
    math_equal.cache_clear()
    calls = []
    real_eval, real_exec = builtins.eval, builtins.exec

    def spy(kind, real):
        def f(src, *a, **k):
            if _mentions_marker(src):
                calls.append((kind, src))
                raise AssertionError(f"{kind} of model text: {src!r}")
            return real(src, *a, **k)

        return f

    monkeypatch.setattr(builtins, "eval", spy("eval", real_eval))
    monkeypatch.setattr(builtins, "exec", spy("exec", real_exec))
    for payload in PAYLOADS:
        for text in (rf"\boxed{{{payload}}}", f"The answer is {payload}.", f"The answer is ${payload}$"):
            TASK.extract(text)
            TASK.is_correct(TASK.extract(text), payload)
            TASK.is_correct(payload, "3")
    assert not calls and not (tmp_path / "MARKER").exists()
    # the spy does see the eval that a vulnerable parser would make (sympy's parse_expr compiles first)
    from sympy.parsing.sympy_parser import parse_expr

    with pytest.raises(AssertionError):
        parse_expr(PAYLOADS[0], evaluate=False)
    assert calls and not (tmp_path / "MARKER").exists()


def _mentions_marker(src) -> bool:
    if isinstance(src, str):
        return "MARKER" in src
    if isinstance(src, types.CodeType):
        return any(_mentions_marker(c) for c in src.co_consts)
    return False


def test_huge_powers_are_not_evaluated():
    t = time.monotonic()
    tower = TASK.extract(r"The answer is \boxed{2^{2^{2^{2^{10}}}}}.")
    assert tower is not None and not TASK.is_correct(tower, "5") and not TASK.is_correct("5", tower)
    assert TASK.extract(r"\boxed{100001!}") is not None
    assert time.monotonic() - t < 10


def test_works_outside_the_main_thread():
    """math-verify's timeouts use SIGALRM, which raises outside the main thread: lmsi turns them off there."""
    canonical_math.cache_clear()
    math_equal.cache_clear()
    out, errors = {}, []

    def work():
        try:
            out["a"] = extract_math(r"The answer is \boxed{\dfrac{6}{8}}.")
            out["ok"] = math_equal("0.75", r"\frac{3}{4}") and math_equal(r"\left[0, 1\right)", "[0,1)")
        except Exception as e:  # pragma: no cover - the failure being tested for
            errors.append(e)

    th = threading.Thread(target=work)
    th.start()
    th.join(60)
    assert not errors and out == {"a": r"\frac{3}{4}", "ok": True}


def test_final_answer_keeps_the_raw_text():
    assert final_answer(r"so \boxed{\frac{a}{\sqrt{b}}} here") == r"\frac{a}{\sqrt{b}}"
    assert final_answer(r"The answer is $\boxed{7}$ and that is all.") == "7"


# -- end to end through the CLI with the fake backend --------------------------------------
def test_file_task_math_end_to_end(tmp_path):
    path = tmp_path / "q.jsonl"
    rows = [
        {"problem": "What is 2 + 3?", "answer": r"\frac{10}{2}"},  # the fake says 5: equivalent gold
        {"problem": "Compute 1 + 1 + 4.", "answer": "6"},
        {"problem": "Let $x = 4$. What is $x + 5$?", "answer": r"So it is $\boxed{9}$."},
        {"problem": "Find 7 + 1.", "answer": "9"},  # the fake says 8: wrong
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["backend=fake", f"data.task=file:{path}", "data.question_field=problem", "data.answer_type=math"]
    runner, rd = CliRunner(), tmp_path / "run"
    for stage in ("sample", "vote", "build"):
        r = runner.invoke(app, [stage, "-r", str(rd), *common, "sample.m=5", "build.threshold=0.0"])
        assert r.exit_code == 0, r.output
    votes = [json.loads(l) for l in (rd / "round_01/votes.jsonl").read_text().splitlines()]
    samples = [json.loads(l) for l in (rd / "round_01/samples.jsonl").read_text().splitlines()]
    assert len(votes) == 4 and all(v["answer"] is not None for v in votes)
    for s in samples:
        assert s["answers"] == [TASK.extract(c) for c in s["completions"]]
    train = [json.loads(l) for l in (rd / "round_01/train.jsonl").read_text().splitlines()]
    cot = [t for t in train if t["format"].endswith("cot")]
    assert cot and all(r"The answer is \boxed{" in t["completion"] for t in cot)
    r = runner.invoke(app, ["signal", "--task", f"file:{path}", "--paths", "3", "-r", str(tmp_path / "sig"), *common])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "sig/signal.json").read_text())["greedy"] == 0.75
