"""The dashboard's sections on orders, payments and carts: what each card, chart and table says.

Labels and layout only: every number comes from ``DashboardData`` (``figures``), formatted by
``presenters``.
"""

from __future__ import annotations

from django.contrib.admin.utils import quote
from django.urls import reverse

from backoffice.dashboard import selectors as q
from backoffice.dashboard.figures import DashboardData
from backoffice.dashboard.presenters import (
    Card,
    Chart,
    Link,
    Section,
    Table,
    day_label,
    money_dataset,
    percent,
    time_left,
)
from common.money import format_money


def order_sections(data: DashboardData) -> list[Section]:
    """Overview, revenue, payments and carts, authorizations awaiting capture: the page's first sections."""
    days = data.period.days()
    labels = [day_label(d) for d in days]
    fm = format_money

    # Overview cards
    p = data.payments
    success_tone = (
        ""
        if data.payment_success_permille is None
        else (
            "good"
            if data.payment_success_permille >= 900
            else "warn"
            if data.payment_success_permille >= 750
            else "bad"
        )
    )
    awaiting_total = sum(a.orders for a in data.awaiting)
    expiring = sum(a.within_24h for a in data.awaiting)
    expired = sum(a.expired for a in data.awaiting)
    overview = Section(
        key="overview",
        title="Overview",
        cards=[
            Card(
                "Payment success rate",
                percent(p.succeeded, p.attempts),
                f"{p.succeeded} succeeded of {p.attempts} attempts; {p.declined} declined"
                + (f", {p.errors} errors" if p.errors else ""),
                success_tone,
            ),
            *[
                Card(
                    f"Average order value ({c.currency_code.upper()})",
                    fm(c.average_order_value, c.currency_code) if c.average_order_value is not None else "–",
                    f"{c.orders} orders, {fm(c.value, c.currency_code)}",
                )
                for c in data.currencies
            ],
            Card(
                "Cart abandonment",
                percent(data.carts.abandoned, data.carts.carts),
                f"{data.carts.abandoned} of {data.carts.carts} carts with items; {data.carts.open} still open",
                "warn" if (data.cart_abandonment_permille or 0) > 700 else "",
            ),
            Card(
                "Awaiting capture",
                str(awaiting_total),
                f"{expiring} expire within 24 h" + (f", {expired} expired" if expired else ""),
                "bad" if expired else ("warn" if expiring else ""),
            ),
        ],
    )

    # Revenue per day per currency
    currencies = [c.currency_code for c in data.currencies]
    by_key = {(r.day, r.currency_code): r for r in data.revenue}
    revenue_charts = []
    for currency in currencies:
        rows = [by_key.get((d, currency)) for d in days]
        revenue_charts.append(
            Chart(
                id=f"revenue-{currency}",
                title=f"Revenue per day, {currency.upper()}",
                type="bar",
                labels=labels,
                datasets=[
                    money_dataset("Captured", [r.captured if r else 0 for r in rows], currency),
                    money_dataset("Refunded", [-(r.refunded) if r else 0 for r in rows], currency),
                    money_dataset("Net", [r.net if r else 0 for r in rows], currency, type="line"),
                ],
                stacked=False,
            )
        )
    revenue = Section(
        key="revenue",
        title="Revenue",
        description="Money captured minus money refunded, by the day it moved; orders by the day they were placed (canceled orders excluded).",
        charts=revenue_charts,
        tables=[
            Table(
                headers=[
                    "Currency",
                    "Orders",
                    "Order value",
                    "Average order value",
                    "Captured",
                    "Refunded",
                    "Net revenue",
                ],
                rows=[
                    [
                        c.currency_code.upper(),
                        str(c.orders),
                        fm(c.value, c.currency_code),
                        fm(c.average_order_value, c.currency_code) if c.average_order_value is not None else "–",
                        fm(c.captured, c.currency_code),
                        fm(c.refunded, c.currency_code),
                        fm(c.net, c.currency_code),
                    ]
                    for c in data.currencies
                ],
                numeric=[1, 2, 3, 4, 5, 6],
            ),
            Table(
                headers=["Day", "Currency", "Orders", "Order value", "Captured", "Refunded", "Net revenue"],
                rows=[
                    [
                        r.day.isoformat(),
                        r.currency_code.upper(),
                        str(r.orders),
                        fm(r.value, r.currency_code),
                        fm(r.captured, r.currency_code),
                        fm(r.refunded, r.currency_code),
                        fm(r.net, r.currency_code),
                    ]
                    for r in reversed(data.revenue)
                ],
                numeric=[2, 3, 4, 5, 6],
            ),
        ],
    )

    # Payments and carts
    by_day = {o.day: o for o in data.payments_by_day}
    payments = Section(
        key="payments",
        title="Payments and carts",
        description=(
            "Success rate: payment attempts succeeded / (succeeded + declined + errors), by the day the outcome "
            "was recorded; every try counts, a card refused on attach and a declined try the shopper retried "
            "included. Abandonment: carts with items that did not become an order."
        ),
        charts=[
            Chart(
                id="payment-outcomes",
                title="Payment outcomes per day",
                type="bar",
                labels=labels,
                datasets=[
                    {
                        "label": "Succeeded",
                        "data": [by_day[d].succeeded if d in by_day else 0 for d in days],
                        "kind": "count",
                        "color": "good",
                    },
                    {
                        "label": "Declined",
                        "data": [by_day[d].declined if d in by_day else 0 for d in days],
                        "kind": "count",
                        "color": "bad",
                    },
                    {
                        "label": "Errors",
                        "data": [by_day[d].errors if d in by_day else 0 for d in days],
                        "kind": "count",
                        "color": "warn",
                    },
                ],
                stacked=True,
            ),
            Chart(
                id="cart-funnel",
                title="Carts with items",
                type="doughnut",
                labels=["Became an order", "Abandoned (expired)", "Abandoned (still open)"],
                datasets=[
                    {
                        "label": "Carts",
                        "data": [data.carts.completed, data.carts.abandoned - data.carts.open, data.carts.open],
                        "kind": "count",
                    }
                ],
            ),
        ],
        tables=[
            Table(
                headers=["Measure", "Count", "Rate"],
                rows=[
                    ["Payment attempts", str(p.attempts), ""],
                    ["Payment attempts succeeded", str(p.succeeded), percent(p.succeeded, p.attempts)],
                    ["Payment attempts declined", str(p.declined), percent(p.declined, p.attempts)],
                    [
                        "Payment attempts refused for another reason (errors)",
                        str(p.errors),
                        percent(p.errors, p.attempts),
                    ],
                    ["3-D Secure asked, no outcome yet (or abandoned)", str(p.unfinished), ""],
                    ["Carts with items", str(data.carts.carts), ""],
                    [
                        "Carts that became an order",
                        str(data.carts.completed),
                        percent(data.carts.completed, data.carts.carts),
                    ],
                    ["Carts abandoned", str(data.carts.abandoned), percent(data.carts.abandoned, data.carts.carts)],
                ],
                numeric=[1, 2],
            ),
            Table(
                headers=["Decline reason", "Stage", "Declines", "Share of declines"],
                rows=[
                    [r.code or "unknown", r.stage, str(r.count), percent(r.count, p.declined)]
                    for r in data.decline_reasons
                ],
                numeric=[2, 3],
                empty="No declined payment in this period.",
            ),
        ],
    )

    # Authorizations awaiting capture (now)
    bucket_labels = [label for _, label in q.EXPIRY_BUCKETS]
    authorizations = Section(
        key="authorizations",
        title="Authorizations awaiting capture (now)",
        description="Uncaptured card authorizations lapse at Stripe's capture_before (or 7 days after authorization); capture them before that.",
        cards=[
            Card(
                f"Awaiting capture ({a.currency_code.upper()})",
                fm(a.amount, a.currency_code),
                f"{a.orders} orders; {a.within_24h} expire within 24 h",
                "bad" if a.expired else ("warn" if a.within_24h else ""),
            )
            for a in data.awaiting
        ],
        charts=[
            Chart(
                id="authorization-expiry",
                title="Time left before the authorization lapses",
                type="bar",
                labels=bucket_labels,
                datasets=[
                    {
                        "label": a.currency_code.upper(),
                        "data": [getattr(a, key) for key, _ in q.EXPIRY_BUCKETS],
                        "kind": "count",
                    }
                    for a in data.awaiting
                ],
                stacked=True,
            )
        ]
        if data.awaiting
        else [],
        tables=[
            Table(
                headers=["Order", "Email", "Amount", "Expires", "Time left"],
                rows=[
                    [
                        Link(f"#{o.display_id}", reverse("admin:orders_order_change", args=[quote(o.pk)])),
                        o.email,
                        fm(o.total, o.currency_code),
                        o.authorization_expires_at.strftime("%Y-%m-%d %H:%M UTC")
                        if o.authorization_expires_at
                        else "–",
                        time_left(o.authorization_expires_at, data.now),
                    ]
                    for o in data.soonest
                ],
                numeric=[2],
                empty="No authorization is waiting for capture.",
            )
        ],
    )
    return [overview, revenue, payments, authorizations]
