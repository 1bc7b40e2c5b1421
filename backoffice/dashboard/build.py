"""``dashboard_build``: run the dashboard's queries for a period and lay out its sections.

A fixed number of aggregate queries (``backoffice.dashboard.selectors`` and the webhook inbox's
``webhooks.selectors_dashboard``), whatever the number of orders. ``chart_payload`` turns the
sections' charts into the JSON the page's Chart.js code reads (money stays in minor units there;
the browser only scales it for display).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from backoffice.dashboard import inbox, sections
from backoffice.dashboard import selectors as q
from backoffice.dashboard.figures import CurrencySummary, DashboardData, revenue_rows
from backoffice.dashboard.periods import Period
from backoffice.dashboard.presenters import rate_permille
from common.money import round_half_up_div


def dashboard_build(*, period: Period, now: datetime | None = None) -> DashboardData:
    now = now or timezone.now()
    start, end = period.start, period.end
    figures = q.payment_figures(start=start, end=end)
    payments = figures.total
    by_currency = q.orders_by_currency(start=start, end=end)
    currencies = [
        CurrencySummary(
            currency_code=c.currency_code,
            orders=c.orders,
            value=c.value,
            average_order_value=round_half_up_div(c.value, c.orders) if c.orders else None,
            captured=c.captured,
            refunded=c.refunded,
        )
        for c in by_currency
    ]
    revenue = revenue_rows(q.money_by_day(start=start, end=end), q.orders_by_day(start=start, end=end))
    carts = q.cart_funnel(start=start, end=end, now=now)
    awaiting = q.authorizations_awaiting(now=now)
    soonest = q.authorizations_soonest()
    webhooks_raw, webhooks_section = inbox.webhook_section(period=period, now=now)
    data = DashboardData(
        period=period,
        now=now,
        payments=payments,
        payment_success_permille=rate_permille(payments.succeeded, payments.attempts),
        payments_by_day=figures.by_day,
        decline_reasons=figures.decline_reasons,
        currencies=currencies,
        revenue=revenue,
        carts=carts,
        cart_abandonment_permille=rate_permille(carts.abandoned, carts.carts),
        awaiting=awaiting,
        soonest=soonest,
        extra={"webhooks": webhooks_raw},
        sections=[],
    )
    data.sections.extend(sections.order_sections(data))
    data.sections.append(webhooks_section)
    return data


def chart_payload(data: DashboardData) -> list[dict[str, Any]]:
    """The charts of every section, as the JSON the dashboard script draws."""
    return [
        {
            "id": chart.id,
            "title": chart.title,
            "type": chart.type,
            "labels": chart.labels,
            "datasets": chart.datasets,
            "stacked": chart.stacked,
        }
        for section in data.sections
        for chart in section.charts
    ]
