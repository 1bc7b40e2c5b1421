"""common/money.py: the exponent table, formatting, exact half-up rounding, the Money value."""

from __future__ import annotations

from fractions import Fraction
from math import floor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.money import (
    CURRENCY_EXPONENTS,
    Money,
    charge_increment,
    currency_exponent,
    format_money,
    is_chargeable,
    round_half_up_div,
    round_half_up_to,
)


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [
        ("usd", 2),
        ("eur", 2),
        ("jpy", 0),
        ("krw", 0),
        ("vnd", 0),
        ("kwd", 3),
        ("bhd", 3),
        ("jod", 3),
        ("omr", 3),
        ("tnd", 3),
        ("JPY", 0),
        ("chf", 2),
    ],
)
def test_currency_exponent_table(currency, exponent):
    assert currency_exponent(currency) == exponent


def test_currency_exponent_table_lists_stripe_special_currencies():
    zero = "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
    three = "bhd jod kwd omr tnd".split()
    assert {c: CURRENCY_EXPONENTS[c] for c in zero} == dict.fromkeys(zero, 0)
    assert {c: CURRENCY_EXPONENTS[c] for c in three} == dict.fromkeys(three, 3)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (1200, "jpy", "¥1,200"),
        (1200, "usd", "$12.00"),
        (1250, "kwd", "KD 1.250"),
        (5, "usd", "$0.05"),
        (0, "usd", "$0.00"),
        (123456789, "usd", "$1,234,567.89"),
        (1234567, "jpy", "¥1,234,567"),
        (5, "kwd", "KD 0.005"),
        (-1250, "usd", "-$12.50"),
        (123456, "chf", "1,234.56 CHF"),
        (1250, "bhd", "1.250 BHD"),
        (1000, "krw", "1,000 KRW"),
        (1200, "JPY", "¥1,200"),
    ],
)
def test_format_money(amount, currency, expected):
    assert format_money(amount, currency) == expected
    assert Money(amount, currency.lower()).format() == expected


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (5, 2, 3),
        (4, 2, 2),
        (3, 2, 2),
        (1, 3, 0),
        (2, 3, 1),
        (0, 7, 0),
        (-5, 2, -3),
        (-1, 3, 0),
        (-2, 3, -1),
        (380625, 1000, 381),
        (380499, 1000, 380),
        (10**30 + 5, 10, 10**29 + 1),
    ],
)
def test_round_half_up_div_examples(numerator, denominator, expected):
    assert round_half_up_div(numerator, denominator) == expected


@pytest.mark.parametrize("denominator", [0, -1])
def test_round_half_up_div_rejects_non_positive_denominator(denominator):
    with pytest.raises(ValueError):
        round_half_up_div(1, denominator)


@given(st.integers(min_value=-(10**18), max_value=10**18), st.integers(min_value=1, max_value=10**9))
def test_round_half_up_div_matches_exact_rational_rounding(numerator, denominator):
    exact = Fraction(numerator, denominator)
    # half up = away from zero on a tie, for either sign
    reference = floor(exact + Fraction(1, 2)) if exact >= 0 else -floor(-exact + Fraction(1, 2))
    result = round_half_up_div(numerator, denominator)
    assert type(result) is int
    assert result == reference
    assert abs(result - exact) <= Fraction(1, 2)


@pytest.mark.parametrize(
    ("numerator", "denominator", "increment", "expected"),
    [(225, 1, 10, 230), (224, 1, 10, 220), (2225, 10, 10, 220), (2250, 10, 10, 230), (7, 2, 1, 4), (0, 3, 10, 0)],
)
def test_round_half_up_to_increment(numerator, denominator, increment, expected):
    assert round_half_up_to(numerator, denominator, increment=increment) == expected


def test_charge_increment_and_is_chargeable():
    assert charge_increment("kwd") == 10
    assert charge_increment("BHD") == 10
    assert charge_increment("usd") == 1
    assert charge_increment("jpy") == 1
    assert is_chargeable(1250, "kwd")
    assert not is_chargeable(1255, "kwd")
    assert is_chargeable(1255, "usd")


def test_money_arithmetic_stays_in_one_currency():
    assert Money(1000, "usd") + Money(250, "usd") == Money(1250, "usd")
    assert Money(1000, "usd") - Money(250, "usd") == Money(750, "usd")
    assert Money(450, "kwd") * 3 == Money(1350, "kwd")
    with pytest.raises(ValueError):
        Money(1, "usd") + Money(1, "jpy")


@pytest.mark.parametrize("amount", [1.5, "10", None, True])
def test_money_amount_must_be_int(amount):
    with pytest.raises(TypeError):
        Money(amount, "usd")


@pytest.mark.parametrize("currency", ["USD", "us", "usdd"])
def test_money_currency_must_be_lower_case_iso(currency):
    with pytest.raises(ValueError):
        Money(1, currency)


def test_money_multiplies_only_by_int():
    with pytest.raises(TypeError):
        Money(100, "usd") * 1.5
