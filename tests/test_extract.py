from hypothesis import given
from hypothesis import strategies as st

from lmsi.tasks.extract import extract_number, normalize_number, numbers_equal


def test_normalize_table():
    assert normalize_number("$1,200.00") == "1200"
    assert normalize_number("3/4") == "0.75"
    assert normalize_number("-7.50") == "-7.5"
    assert normalize_number("42.") == "42"
    assert normalize_number("15%") == "15"
    assert normalize_number("1/0") is None
    assert normalize_number("abc") is None


def test_extract_prefers_answer_is():
    assert extract_number("3 + 4 = 7. Then 7 * 2 = 14. The answer is 14.") == "14"
    assert extract_number("The answer is $1,250.") == "1250"
    assert extract_number("so the answer is: 12 apples") == "12"
    assert extract_number("The answer is 5. Wait, the answer is 6.") == "6"  # last statement wins


def test_extract_nothing():
    assert extract_number("He has 3 + 4 = 7 apples.") is None  # no answer statement: abstain
    assert extract_number("") is None
    assert extract_number("The answer is unknown.") is None


@given(st.integers(-(10**9), 10**9))
def test_integers_roundtrip_with_commas_and_dollars(n):
    text = f"The answer is ${n:,}." if n >= 0 else f"The answer is {n:,}."
    assert numbers_equal(extract_number(text), str(n))


@given(st.fractions(min_value=-1000, max_value=1000, max_denominator=50))
def test_fraction_equivalence(q):
    assert numbers_equal(
        normalize_number(f"{q.numerator}/{q.denominator}"), normalize_number(f"{q.numerator}/{q.denominator}")
    )
    assert normalize_number(f"{q.numerator}/{q.denominator}") is not None
