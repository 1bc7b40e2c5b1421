"""Amounts typed by staff: major-unit text -> integer minor units, exactly, per currency."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backoffice.forms import amount_input, parse_amount


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.00", "usd", 1200),
        ("12", "usd", 1200),
        ("12.5", "usd", 1250),
        ("$1,234.56", "usd", 123456),
        ("0.01", "usd", 1),
        ("1200", "jpy", 1200),
        ("¥1,200", "jpy", 1200),
        ("1.250", "kwd", 1250),
        ("KD 1.25", "kwd", 1250),
        ("1.250 KWD", "kwd", 1250),
        ("€19.90", "eur", 1990),
    ],
)
def test_parse_amount(text, currency, minor):
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("12.345", "usd", "USD amounts have at most 2 decimals."),
        ("12.5", "jpy", "JPY amounts have no decimals."),
        ("1.2345", "kwd", "KWD amounts have at most 3 decimals."),
        ("0", "usd", "The amount must be greater than zero."),
        ("-1", "usd", "Enter an amount like 12.00."),
        ("1e3", "usd", "Enter an amount like 12.00."),
        ("12,00", "usd", "Enter an amount like 12.00."),
        ("", "jpy", "Enter an amount like 1200."),
    ],
)
def test_parse_amount_refuses(text, currency, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        parse_amount(text, currency)


@given(amount=st.integers(min_value=1, max_value=10**11 - 1), currency=st.sampled_from(["usd", "jpy", "kwd", "eur"]))
def test_amount_input_round_trips(amount, currency):
    assert parse_amount(amount_input(amount, currency), currency) == amount
