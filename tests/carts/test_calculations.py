"""Property-based and exact tests of the pure pricing/tax rule (docs/money-and-tax.md)."""

from __future__ import annotations

from fractions import Fraction
from math import floor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carts.calculations import LineInput, cart_totals, line_totals, tax_for
from common.money import charge_increment, currency_exponent

# One currency of each exponent class: 2 (usd), 0 (jpy), 3 (kwd).
CURRENCIES = ["usd", "jpy", "kwd"]


def _reference_tax(amount: int, bps: int, inclusive: bool, increment: int) -> int:
    """The rule written out with exact rationals: half up to a multiple of the increment."""
    exact = Fraction(amount * bps, 10_000 + bps) if inclusive else Fraction(amount * bps, 10_000)
    return floor(exact / increment + Fraction(1, 2)) * increment


@st.composite
def carts(draw):
    currency = draw(st.sampled_from(CURRENCIES))
    increment = charge_increment(currency)
    # catalog rule: prices and shipping amounts are multiples of the charge increment
    amount = st.integers(min_value=0, max_value=10**7 // increment).map(lambda n: n * increment)
    lines = draw(
        st.lists(
            st.tuples(amount, st.integers(min_value=1, max_value=10_000)),
            max_size=30,
        )
    )
    return {
        "currency": currency,
        "increment": increment,
        "lines": [LineInput(key=f"item_{i}", unit_price=p, quantity=q) for i, (p, q) in enumerate(lines)],
        "shipping": draw(amount),
        "bps": draw(st.one_of(st.integers(min_value=0, max_value=3_000), st.integers(min_value=0, max_value=100_000))),
        "inclusive": draw(st.booleans()),
    }


def _totals(cart, *, tax_inclusive: bool | None = None):
    """``cart_totals`` of a generated cart, in its own tax mode unless ``tax_inclusive`` is given."""
    return cart_totals(
        lines=cart["lines"],
        shipping_amount=cart["shipping"],
        tax_rate_bps=cart["bps"],
        tax_inclusive=cart["inclusive"] if tax_inclusive is None else tax_inclusive,
        increment=cart["increment"],
    )


def _all_ints(totals) -> list[int]:
    values = [totals.subtotal, totals.shipping_total, totals.shipping_tax, totals.tax_total, totals.total]
    for line in totals.lines.values():
        values += [line.subtotal, line.tax_total, line.total]
    return values


@settings(max_examples=400)
@given(carts())
def test_cart_totals_are_exact_sums_of_rounded_parts(cart):
    totals = _totals(cart)
    lines = totals.lines.values()
    # nothing fractional, anywhere
    assert all(type(v) is int for v in _all_ints(totals))
    assert totals.subtotal == sum(line.subtotal for line in lines)
    assert totals.shipping_total == cart["shipping"]
    assert totals.tax_total == sum(line.tax_total for line in lines) + totals.shipping_tax
    if cart["inclusive"]:
        assert totals.total == totals.subtotal + totals.shipping_total
        assert all(line.total == line.subtotal for line in lines)
    else:
        assert totals.total == totals.subtotal + totals.shipping_total + totals.tax_total
        assert all(line.total == line.subtotal + line.tax_total for line in lines)
    for source, line in zip(cart["lines"], lines, strict=True):
        assert line.subtotal == source.unit_price * source.quantity
        # tax is computed from the line total (not per unit), rounded half up to the increment
        assert line.tax_total == _reference_tax(line.subtotal, cart["bps"], cart["inclusive"], cart["increment"])
    assert totals.shipping_tax == _reference_tax(cart["shipping"], cart["bps"], cart["inclusive"], cart["increment"])


@settings(max_examples=400)
@given(carts())
def test_inclusive_tax_never_exceeds_the_gross(cart):
    totals = _totals(cart, tax_inclusive=True)
    for line in totals.lines.values():
        assert 0 <= line.tax_total <= line.subtotal
    assert 0 <= totals.shipping_tax <= totals.shipping_total
    assert 0 <= totals.tax_total <= totals.total


@settings(max_examples=400)
@given(carts())
def test_every_amount_is_chargeable_in_its_currency(cart):
    """Three-decimal currencies: every amount (so the charged total) is a multiple of 10 fils."""
    totals = _totals(cart)
    assert all(v % cart["increment"] == 0 for v in _all_ints(totals))
    if currency_exponent(cart["currency"]) == 3:
        assert totals.total % 10 == 0


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=100_000))
def test_tax_is_within_half_a_minor_unit_of_the_exact_tax(amount, bps):
    for inclusive in (False, True):
        exact = Fraction(amount * bps, 10_000 + bps) if inclusive else Fraction(amount * bps, 10_000)
        tax = tax_for(amount=amount, tax_rate_bps=bps, tax_inclusive=inclusive)
        assert abs(tax - exact) <= Fraction(1, 2)


# --- exact examples --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit_price", "quantity", "bps", "inclusive", "increment", "tax", "total"),
    [
        # usd 8.75% exclusive: 14.50 x 3 = 43.50, tax 3.80625 -> 3.81
        (1450, 3, 875, False, 1, 381, 4731),
        # half-up at exactly .5: 10.00 x 8.75% = 0.875 -> 0.88
        (1000, 1, 875, False, 1, 88, 1088),
        # usd: tax from the line total, not per unit: 0.05 x 8.75% = 0.004375 per unit; x 100 = 0.4375 -> 0.44
        (5, 100, 875, False, 1, 44, 544),
        # jpy 10% inclusive: ¥2,200 contains ¥200
        (2200, 1, 1000, True, 1, 200, 2200),
        # jpy 10% inclusive: ¥1,234 contains 112.18 -> ¥112
        (1234, 1, 1000, True, 1, 112, 1234),
        # jpy 10% exclusive, zero-decimal: ¥1,005 x 10% = 100.5 -> ¥101
        (1005, 1, 1000, False, 1, 101, 1106),
        # kwd 5% exclusive: 4.450 KD -> 0.2225 -> 0.220 (to 10 fils)
        (4450, 1, 500, False, 10, 220, 4670),
        # kwd 5% exclusive: 4.500 KD -> 0.225 -> 0.230 (half up to 10 fils)
        (4500, 1, 500, False, 10, 230, 4730),
        # kwd 5% exclusive, 3 units: 13.350 -> 0.6675 -> 0.670
        (4450, 3, 500, False, 10, 670, 14020),
        # zero rate
        (999, 7, 0, False, 1, 0, 6993),
    ],
)
def test_line_totals_examples(unit_price, quantity, bps, inclusive, increment, tax, total):
    line = line_totals(
        unit_price=unit_price, quantity=quantity, tax_rate_bps=bps, tax_inclusive=inclusive, increment=increment
    )
    assert (line.subtotal, line.tax_total, line.total) == (unit_price * quantity, tax, total)


def test_cart_totals_example_kwd_with_shipping():
    totals = cart_totals(
        lines=[LineInput(key="a", unit_price=4450, quantity=1), LineInput(key="b", unit_price=18050, quantity=2)],
        shipping_amount=1500,
        tax_rate_bps=500,
        tax_inclusive=False,
        increment=10,
    )
    # a: 222.5 -> 220; b: 36100 x 5% = 1805 -> 1810; shipping: 75 -> 80
    assert totals.lines["a"].tax_total == 220
    assert totals.lines["b"].tax_total == 1810
    assert totals.shipping_tax == 80
    assert (totals.subtotal, totals.shipping_total, totals.tax_total, totals.total) == (40550, 1500, 2110, 44160)


def test_cart_totals_example_jpy_inclusive_with_shipping():
    totals = cart_totals(
        lines=[LineInput(key="a", unit_price=2200, quantity=3)],
        shipping_amount=600,
        tax_rate_bps=1000,
        tax_inclusive=True,
    )
    # ¥6,600 contains ¥600; shipping ¥600 contains 54.5 -> ¥55
    assert (totals.subtotal, totals.shipping_total, totals.tax_total, totals.total) == (6600, 600, 655, 7200)


def test_tax_for_rejects_negative_amounts():
    with pytest.raises(ValueError):
        tax_for(amount=-1, tax_rate_bps=875, tax_inclusive=False)
