"""Money: minor units from CLDR, parsing without silent rounding, half-up percents, exact splits."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import money
from ledger.money import MoneyError


def test_currency_digits_come_from_cldr():
    assert money.currency("KWD").digits == 3
    assert money.currency("jpy").digits == 0
    assert money.currency("EUR").digits == 2
    assert money.currency("IRR").digits == 0
    with pytest.raises(MoneyError):
        money.currency("XXZ")


def test_parse_and_format_round_trip():
    kwd = money.currency("KWD")
    assert money.parse("12.5", kwd) == 12500
    assert money.parse("0.001", kwd) == 1
    assert money.fmt(12500, kwd) == "12.500"
    assert money.fmt(-5, kwd) == "-0.005"
    assert money.parse("1500", money.currency("JPY")) == 1500
    assert money.fmt(1500, money.currency("JPY")) == "1500"


@pytest.mark.parametrize(("text", "code"), [("1.2345", "KWD"), ("0.0001", "KWD"), ("0.1500", "KWD"), ("1.500", "EUR"), ("980.0", "JPY")])
def test_too_many_digits_is_an_error_not_a_rounding(text, code):
    # digits are counted as written: a padding zero past the currency's digits is refused too
    cur = money.currency(code)
    with pytest.raises(MoneyError, match=f"more than {cur.digits} decimal digit"):
        money.parse(text, cur)


@pytest.mark.parametrize("text", ["abc", "", "NaN", "Infinity", "-1.000", "1e3", "1e-4", "1.", ".5", "+1.000", "1,500", "0x10"])
def test_not_an_amount(text):
    with pytest.raises(MoneyError):
        money.parse(text, money.currency("KWD"))


def test_the_example_in_the_message_has_the_currency_s_digits():
    with pytest.raises(MoneyError, match='"12"'):
        money.parse("1e3", money.currency("JPY"))
    with pytest.raises(MoneyError, match=r'"12\.50"'):
        money.parse("x", money.currency("EUR"))


def test_floats_are_refused():
    with pytest.raises(MoneyError, match="decimal string"):
        money.parse(0.75, money.currency("KWD"))  # type: ignore[arg-type]


def test_percent_of_rounds_half_up():
    assert money.percent_of(750, 5) == 38  # 37.5
    assert money.percent_of(750, Fraction(5, 2)) == 19  # 18.75
    assert money.percent_of(740, 5) == 37
    assert money.percent_of(10, 25) == 3  # 2.5
    assert money.percent_of(0, 50) == 0


def test_display_uses_the_locale():
    kwd = money.currency("KWD")
    assert "12.500" in money.display(12500, kwd, "en")
    arabic = money.display(12500, kwd, "ar")
    assert "١٢" in arabic or "12" in arabic


@given(st.integers(min_value=0, max_value=10**9), st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=20).filter(lambda w: sum(w) > 0))
def test_allocate_adds_up_and_is_proportional(total, weights):
    parts = money.allocate(total, weights)
    assert sum(parts) == total
    base = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part - Fraction(total * weight, base)) < 1
        if weight == 0:
            assert part == 0
