"""The dashboard's figures: raw numbers (ints in minor units per currency, counts, durations) as
the aggregate queries of ``backoffice.dashboard.selectors`` return them, for the tables and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from backoffice.dashboard import selectors as q
from backoffice.dashboard.periods import Period
from backoffice.dashboard.presenters import Section


@dataclass(frozen=True)
class CurrencySummary(q.CurrencyOrders):
    """One currency over the period (``net``: captured minus refunded)."""

    average_order_value: int | None


@dataclass(frozen=True)
class RevenueRow(q.CurrencyOrders):
    """One currency on one day."""

    day: date


@dataclass(frozen=True)
class DashboardData:
    period: Period
    now: datetime
    payments: q.PaymentOutcomes
    payment_success_permille: int | None
    payments_by_day: list[q.PaymentOutcomes]
    decline_reasons: list[q.DeclineReason]
    currencies: list[CurrencySummary]
    revenue: list[RevenueRow]
    carts: q.CartFunnel
    cart_abandonment_permille: int | None
    awaiting: list[q.AwaitingCapture]
    soonest: list[Any]
    extra: dict[str, Any]  # raw figures of the webhook inbox section, under "webhooks"
    sections: list[Section]


def revenue_rows(money: list[q.MoneyDay], orders: list[q.OrdersDay]) -> list[RevenueRow]:
    keyed: dict[tuple[date, str], dict[str, int]] = {}
    for m in money:
        keyed.setdefault((m.day, m.currency_code), {}).update(captured=m.captured, refunded=m.refunded)
    for o in orders:
        keyed.setdefault((o.day, o.currency_code), {}).update(orders=o.orders, value=o.value)
    return [
        RevenueRow(
            day=day,
            currency_code=currency,
            orders=v.get("orders", 0),
            value=v.get("value", 0),
            captured=v.get("captured", 0),
            refunded=v.get("refunded", 0),
        )
        for (day, currency), v in sorted(keyed.items())
    ]
