"""Pure pricing and tax functions (no database). The rule is written in docs/money-and-tax.md.

All amounts are ints in the currency's minor unit. Tax on each line is computed
from the line total (unit price x quantity) and rounded half up to the minor
unit -- or, in the three-decimal currencies, to the currency's charge increment
of 10 minor units (``common.money.charge_increment``), so that totals stay
chargeable by card; shipping is taxed at the region rate the same way; cart
totals are exact sums of the rounded parts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from common.money import round_half_up_to

BPS = 10_000


@dataclass(frozen=True, slots=True)
class LineInput:
    key: str
    unit_price: int
    quantity: int


@dataclass(frozen=True, slots=True)
class LineTotals:
    subtotal: int
    tax_total: int
    total: int


@dataclass(frozen=True, slots=True)
class CartTotals:
    lines: dict[str, LineTotals]
    subtotal: int
    shipping_total: int
    shipping_tax: int
    tax_total: int
    total: int


def tax_for(*, amount: int, tax_rate_bps: int, tax_inclusive: bool, increment: int = 1) -> int:
    """Tax on ``amount``: added on top (exclusive) or contained in it (inclusive).

    Rounded half up to a multiple of ``increment`` minor units (1, or 10 in the
    three-decimal currencies).
    """
    if amount < 0 or tax_rate_bps < 0:
        raise ValueError("amount and rate must be non-negative")
    if tax_inclusive:
        return round_half_up_to(amount * tax_rate_bps, BPS + tax_rate_bps, increment=increment)
    return round_half_up_to(amount * tax_rate_bps, BPS, increment=increment)


def line_totals(
    *, unit_price: int, quantity: int, tax_rate_bps: int, tax_inclusive: bool, increment: int = 1
) -> LineTotals:
    subtotal = unit_price * quantity
    tax = tax_for(amount=subtotal, tax_rate_bps=tax_rate_bps, tax_inclusive=tax_inclusive, increment=increment)
    return LineTotals(subtotal=subtotal, tax_total=tax, total=subtotal if tax_inclusive else subtotal + tax)


def cart_totals(
    *,
    lines: Iterable[LineInput],
    shipping_amount: int,
    tax_rate_bps: int,
    tax_inclusive: bool,
    increment: int = 1,
) -> CartTotals:
    per_line = {
        line.key: line_totals(
            unit_price=line.unit_price,
            quantity=line.quantity,
            tax_rate_bps=tax_rate_bps,
            tax_inclusive=tax_inclusive,
            increment=increment,
        )
        for line in lines
    }
    subtotal = sum(t.subtotal for t in per_line.values())
    shipping_tax = tax_for(
        amount=shipping_amount, tax_rate_bps=tax_rate_bps, tax_inclusive=tax_inclusive, increment=increment
    )
    tax_total = sum(t.tax_total for t in per_line.values()) + shipping_tax
    total = subtotal + shipping_amount + (0 if tax_inclusive else tax_total)
    return CartTotals(
        lines=per_line,
        subtotal=subtotal,
        shipping_total=shipping_amount,
        shipping_tax=shipping_tax,
        tax_total=tax_total,
        total=total,
    )
