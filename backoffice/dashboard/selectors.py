"""Analytics reads for the admin dashboard (backoffice/dashboard). All aggregation happens in SQL.

Each function is one query (a GROUP BY with conditional aggregates) over a half-open period
``[start, end)``; none loops over orders in Python. Money is summed per currency in minor
units and never mixed across currencies. Definitions (also in docs/admin.md):

* **payment success rate**: of the payment attempts whose outcome was recorded in the period
  (``payments.PaymentAttempt``, via ``payments.selectors.payment_attempt_counts``), the share
  that succeeded: succeeded / (succeeded + declined + errors). A card refused on attach counts,
  and a declined attempt stays counted when the shopper retries (its session is canceled then).
  3-D Secure requests still without an outcome are counted apart (``unfinished``).
* **revenue per day**: money captured minus money refunded (settled ledger rows), by the day
  the money moved, per currency; orders placed and their value by the day they were placed.
* **average order value**: total of the orders placed in the period (canceled ones excluded)
  divided by their number, per currency, rounded half up to the minor unit.
* **cart abandonment rate**: of the carts created in the period that had at least one item,
  the share that did not become an order (not ``completed``).
* **authorizations awaiting capture** (now, whatever the period): orders whose payment is
  ``authorized``, by currency and by time left before the authorization lapses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, Exists, IntegerField, OuterRef, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncDate

from carts.models import Cart, CartStatus, LineItem
from orders.expiry import EXPIRY_WARNING_WINDOW, orders_awaiting_capture
from orders.models import Order, OrderStatus, PaymentStatus
from payments import selectors as payment_selectors
from payments.models import LedgerEntry, LedgerEntryKind, LedgerEntryStatus, PaymentAttemptOutcome

_ZERO = Value(0, output_field=IntegerField())


def _sum(field: str, condition: Q | None = None) -> Coalesce:
    return Coalesce(Sum(field, filter=condition), _ZERO)


# --- Payments ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentOutcomes:
    day: date | None  # None: the whole period
    succeeded: int
    declined: int
    errors: int  # refused by Stripe for another definite reason than the card
    unfinished: int  # 3-D Secure asked for, no outcome (yet, or abandoned)

    @property
    def attempts(self) -> int:
        """Attempts with an outcome: the success rate's denominator."""
        return self.succeeded + self.declined + self.errors


@dataclass(frozen=True)
class DeclineReason:
    stage: str  # attach | confirm
    code: str  # Stripe's decline_code, else its error code
    count: int


@dataclass(frozen=True)
class PaymentFigures:
    total: PaymentOutcomes
    by_day: list[PaymentOutcomes]
    decline_reasons: list[DeclineReason]  # most frequent first


def payment_figures(*, start: datetime, end: datetime) -> PaymentFigures:
    """Payment attempt outcomes over the period, per day and by decline reason (one query)."""
    days: dict[date, dict[str, int]] = {}
    reasons: dict[tuple[str, str], int] = {}
    for row in payment_selectors.payment_attempt_counts(start=start, end=end):
        counts = days.setdefault(row.day, {"succeeded": 0, "declined": 0, "errors": 0, "unfinished": 0})
        if row.outcome == PaymentAttemptOutcome.SUCCEEDED:
            counts["succeeded"] += row.count
        elif row.outcome == PaymentAttemptOutcome.DECLINED:
            counts["declined"] += row.count
            reasons[(row.stage, row.decline_code)] = reasons.get((row.stage, row.decline_code), 0) + row.count
        elif row.outcome == PaymentAttemptOutcome.ERROR:
            counts["errors"] += row.count
        elif row.outcome == PaymentAttemptOutcome.REQUIRES_ACTION and not row.settled:
            counts["unfinished"] += row.count
    by_day = [PaymentOutcomes(day=day, **counts) for day, counts in sorted(days.items())]
    total = PaymentOutcomes(
        day=None,
        **{key: sum(getattr(d, key) for d in by_day) for key in ("succeeded", "declined", "errors", "unfinished")},
    )
    decline_reasons = [
        DeclineReason(stage=stage, code=code, count=count)
        for (stage, code), count in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    ]
    return PaymentFigures(total=total, by_day=by_day, decline_reasons=decline_reasons)


# --- Revenue and orders -------------------------------------------------------------------


@dataclass(frozen=True)
class MoneyMoved:
    """Money captured and refunded (settled ledger rows) in one currency."""

    currency_code: str
    captured: int
    refunded: int

    @property
    def net(self) -> int:
        return self.captured - self.refunded


@dataclass(frozen=True)
class MoneyDay(MoneyMoved):
    day: date


def _money_moved(start: datetime, end: datetime):  # type: ignore[no-untyped-def]
    return LedgerEntry.objects.filter(
        created_at__gte=start,
        created_at__lt=end,
        status=LedgerEntryStatus.SUCCEEDED,
        kind__in=[LedgerEntryKind.CAPTURE, LedgerEntryKind.REFUND],
    )


_MONEY_MOVED = {
    "captured": _sum("amount", Q(kind=LedgerEntryKind.CAPTURE)),
    "refunded": _sum("amount", Q(kind=LedgerEntryKind.REFUND)),
}


def money_by_day(*, start: datetime, end: datetime) -> list[MoneyDay]:
    """Captured and refunded money per day and currency (settled ledger rows)."""
    rows = (
        _money_moved(start, end)
        .annotate(day=TruncDate("created_at"))
        .values("day", "currency_code")
        .annotate(**_MONEY_MOVED)
        .order_by("day", "currency_code")
    )
    return [MoneyDay(**row) for row in rows]


@dataclass(frozen=True)
class OrdersDay:
    day: date
    currency_code: str
    orders: int
    value: int


def _placed(start: datetime, end: datetime):  # type: ignore[no-untyped-def]
    return Order.objects.filter(created_at__gte=start, created_at__lt=end).exclude(status=OrderStatus.CANCELED)


_PLACED = {"orders": Count("pk"), "value": _sum("total")}


def orders_by_day(*, start: datetime, end: datetime) -> list[OrdersDay]:
    """Orders placed (not canceled) per day and currency, and their total value."""
    rows = (
        _placed(start, end)
        .annotate(day=TruncDate("created_at"))
        .values("day", "currency_code")
        .annotate(**_PLACED)
        .order_by("day", "currency_code")
    )
    return [OrdersDay(**row) for row in rows]


@dataclass(frozen=True)
class CurrencyOrders(MoneyMoved):
    """Orders placed and their value, and money captured and refunded, in one currency."""

    orders: int
    value: int


def orders_by_currency(*, start: datetime, end: datetime) -> list[CurrencyOrders]:
    """Per currency over the whole period: orders placed and their value; money captured and refunded."""
    placed = {
        row["currency_code"]: row for row in _placed(start, end).values("currency_code").annotate(**_PLACED).order_by()
    }
    moved = {
        row["currency_code"]: row
        for row in _money_moved(start, end).values("currency_code").annotate(**_MONEY_MOVED).order_by()
    }
    return [
        CurrencyOrders(
            currency_code=code,
            orders=placed.get(code, {}).get("orders", 0),
            value=placed.get(code, {}).get("value", 0),
            captured=moved.get(code, {}).get("captured", 0),
            refunded=moved.get(code, {}).get("refunded", 0),
        )
        for code in sorted(set(placed) | set(moved))
    ]


# --- Carts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CartFunnel:
    carts: int  # created in the period with at least one item
    completed: int
    open: int  # still active and not expired: may convert yet

    @property
    def abandoned(self) -> int:
        return self.carts - self.completed


def cart_funnel(*, start: datetime, end: datetime, now: datetime) -> CartFunnel:
    row = (
        Cart.objects.filter(created_at__gte=start, created_at__lt=end)
        .filter(Exists(LineItem.objects.filter(cart_id=OuterRef("pk"))))
        .aggregate(
            carts=Count("pk"),
            completed=Count("pk", filter=Q(status=CartStatus.COMPLETED)),
            open=Count(
                "pk",
                filter=Q(status__in=[CartStatus.ACTIVE, CartStatus.COMPLETING], expires_at__gt=now),
            ),
        )
    )
    return CartFunnel(**row)


# --- Authorizations awaiting capture (now) -----------------------------------------------

EXPIRY_BUCKETS = (
    ("expired", "Expired"),
    ("within_24h", "< 24 h"),
    ("within_72h", "1–3 days"),
    ("later", "> 3 days"),
)


@dataclass(frozen=True)
class AwaitingCapture:
    currency_code: str
    orders: int
    amount: int
    expired: int
    within_24h: int
    within_72h: int
    later: int


def authorizations_awaiting(*, now: datetime) -> list[AwaitingCapture]:
    soon, later = now + EXPIRY_WARNING_WINDOW, now + timedelta(hours=72)
    rows = (
        orders_awaiting_capture()
        .values("currency_code")
        .annotate(
            orders=Count("pk"),
            amount=_sum("total"),
            expired=Count("pk", filter=Q(authorization_expires_at__lte=now)),
            within_24h=Count("pk", filter=Q(authorization_expires_at__gt=now, authorization_expires_at__lte=soon)),
            within_72h=Count("pk", filter=Q(authorization_expires_at__gt=soon, authorization_expires_at__lte=later)),
            later=Count("pk", filter=Q(authorization_expires_at__gt=later) | Q(authorization_expires_at__isnull=True)),
        )
        .order_by("currency_code")
    )
    return [AwaitingCapture(**row) for row in rows]


def authorizations_soonest(*, limit: int = 10) -> list[Order]:
    """The uncaptured authorizations that lapse first (with ``authorization_expires_at``)."""
    return list(
        orders_awaiting_capture()
        .filter(payment_status=PaymentStatus.AUTHORIZED)
        .order_by("authorization_expires_at", "display_id")[:limit]
    )
