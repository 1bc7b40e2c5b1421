"""The admin analytics dashboard: a period, the figures for it, and what the page draws.

``dashboard_build`` runs a fixed number of aggregate queries (``backoffice.selectors_dashboard``,
plus the sections other apps plug in) and returns ``DashboardData``: the raw figures (ints in
minor units per currency, counts, durations) for tests and the table, and ``sections`` for the
template. ``chart_payload`` turns the sections' charts into the JSON the page's Chart.js code
reads (money stays in minor units there; the browser only scales it for display).

Other apps add a section with :func:`dashboard_section_register` (the webhook inbox does, from
``webhooks/admin.py``): orders never imports them, the dependency keeps pointing at orders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils import timezone

from backoffice import selectors_dashboard as q
from common.money import currency_exponent, format_money, round_half_up_div

DEFAULT_DAYS = 30
PRESETS = (7, 30, 90)
MAX_DAYS = 366


# --- Period -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    first_day: date
    last_day: date  # inclusive
    preset: int | None = None

    @property
    def start(self) -> datetime:
        return datetime(self.first_day.year, self.first_day.month, self.first_day.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive: midnight after the last day."""
        return self.start + timedelta(days=self.length)

    @property
    def length(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=n) for n in range(self.length)]

    def label(self) -> str:
        return f"{self.first_day:%d %b %Y} – {self.last_day:%d %b %Y}"


def period_last_days(days: int, *, today: date | None = None) -> Period:
    today = today or timezone.now().astimezone(UTC).date()
    return Period(first_day=today - timedelta(days=days - 1), last_day=today, preset=days if days in PRESETS else None)


def period_from_query(params: Mapping[str, str], *, today: date | None = None) -> Period:
    """``?days=7|30|90`` or ``?start=YYYY-MM-DD&end=YYYY-MM-DD``; anything invalid gives the default."""
    today = today or timezone.now().astimezone(UTC).date()
    start, end = params.get("start"), params.get("end")
    if start or end:
        try:
            first = date.fromisoformat(start) if start else today - timedelta(days=DEFAULT_DAYS - 1)
            last = date.fromisoformat(end) if end else today
        except ValueError:
            return period_last_days(DEFAULT_DAYS, today=today)
        if first > last:
            first, last = last, first
        if (last - first).days + 1 > MAX_DAYS:
            first = last - timedelta(days=MAX_DAYS - 1)
        return Period(first_day=first, last_day=last)
    try:
        days = int(params.get("days", DEFAULT_DAYS))
    except (TypeError, ValueError):
        days = DEFAULT_DAYS
    return period_last_days(min(max(days, 1), MAX_DAYS), today=today)


# --- Presentation pieces (shared with plugged-in sections) ----------------------------------


@dataclass(frozen=True)
class Card:
    label: str
    value: str
    note: str = ""
    tone: str = ""  # "", "good", "warn", "bad"


@dataclass(frozen=True)
class Link:
    text: str
    url: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[Any]]  # cells: str, or Link
    numeric: list[int] = field(default_factory=list)  # right-aligned column indexes
    empty: str = "Nothing in this period."


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    type: str  # "bar" | "line" | "doughnut"
    labels: list[str]
    datasets: list[dict[str, Any]]  # {label, data, kind: count|money|percent|seconds, currency?, exponent?, ...}
    stacked: bool = False


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    description: str = ""
    cards: list[Card] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


SectionProvider = Callable[[Period, datetime], tuple[str, Any, Section]]
_PROVIDERS: list[SectionProvider] = []


def dashboard_section_register(provider: SectionProvider) -> SectionProvider:
    """Add a section (another app's figures); ``provider(period, now) -> (key, raw figures, Section)``."""
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)
    return provider


def percent(numerator: int, denominator: int) -> str:
    """ "92.3 %" (tenths, rounded half up; integer arithmetic), or "–" without a denominator."""
    if denominator <= 0:
        return "–"
    permille = round_half_up_div(numerator * 1000, denominator)
    return f"{permille // 10}.{permille % 10} %"


def rate_permille(numerator: int, denominator: int) -> int | None:
    return round_half_up_div(numerator * 1000, denominator) if denominator > 0 else None


def duration(value: timedelta | None) -> str:
    if value is None:
        return "–"
    seconds = value.total_seconds()
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60} s"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def money_dataset(label: str, values: list[int], currency: str, **extra: Any) -> dict[str, Any]:
    return {
        "label": label,
        "data": values,
        "kind": "money",
        "currency": currency,
        "exponent": currency_exponent(currency),
        **extra,
    }


# --- The figures ---------------------------------------------------------------------------


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
    extra: dict[str, Any]  # raw figures of plugged-in sections, by key
    sections: list[Section]


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
    revenue = _revenue_rows(q.money_by_day(start=start, end=end), q.orders_by_day(start=start, end=end))
    carts = q.cart_funnel(start=start, end=end, now=now)
    awaiting = q.authorizations_awaiting(now=now)
    soonest = q.authorizations_soonest()
    extra: dict[str, Any] = {}
    plugged: list[Section] = []
    for provider in _PROVIDERS:
        key, raw, section = provider(period, now)
        extra[key] = raw
        plugged.append(section)
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
        extra=extra,
        sections=[],
    )
    data.sections.extend(_sections(data))
    data.sections.extend(plugged)
    return data


def _revenue_rows(money: list[q.MoneyDay], orders: list[q.OrdersDay]) -> list[RevenueRow]:
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


# --- Sections for the page -----------------------------------------------------------------


def _day_label(day: date) -> str:
    return day.strftime("%d %b")


def _sections(data: DashboardData) -> list[Section]:
    days = data.period.days()
    labels = [_day_label(d) for d in days]
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
                        _time_left(o.authorization_expires_at, data.now),
                    ]
                    for o in data.soonest
                ],
                numeric=[2],
                empty="No authorization is waiting for capture.",
            )
        ],
    )
    return [overview, revenue, payments, authorizations]


def _time_left(expires_at: datetime | None, now: datetime) -> str:
    if expires_at is None:
        return "–"
    if expires_at <= now:
        return "expired"
    return duration(expires_at - now)


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
