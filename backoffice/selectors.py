"""Reads for the staff back office (backoffice/admin.py): list annotations and the order page.

Everything here is a read. The order page is a fixed number of queries whatever the size of
the order (lines, ledger rows, disputes and events are one query each).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.actors import Actor
from customers import selectors as customer_selectors
from orders.expiry import EXPIRY_WARNING_WINDOW, authorization_expires_at, authorization_expires_expression
from orders.models import Order, OrderEvent, OrderLine, PaymentStatus
from payments import ledger
from payments.models import Dispute, LedgerEntry, LedgerEntryKind, LedgerEntryStatus


def dispute_open_expression() -> Exists:
    return Exists(Dispute.objects.filter(payment_intent_id=OuterRef("payment_intent_id"), is_open=True))


def _ledger_sum(kind: str) -> Coalesce:
    rows = (
        LedgerEntry.objects.filter(
            payment_intent_id=OuterRef("payment_intent_id"), kind=kind, status=LedgerEntryStatus.SUCCEEDED
        )
        .order_by()
        .values("payment_intent_id")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return Coalesce(Subquery(rows), 0)


def order_admin_queryset() -> QuerySet[Order]:
    """The order list: ledger amounts, authorization expiry and open dispute as SQL annotations."""
    return Order.objects.select_related("region").annotate(
        amount_captured=_ledger_sum(LedgerEntryKind.CAPTURE),
        amount_refunded=_ledger_sum(LedgerEntryKind.REFUND),
        authorization_expires_at=authorization_expires_expression(),
        has_open_dispute=dispute_open_expression(),
    )


def orders_with_open_dispute_filter(*, open_dispute: bool) -> Q:
    ids = Dispute.objects.filter(is_open=True).values("payment_intent_id")
    return Q(payment_intent_id__in=ids) if open_dispute else ~Q(payment_intent_id__in=ids)


# --- The order page -----------------------------------------------------------------------


@dataclass(frozen=True)
class OrderMoney:
    """What staff may still do with an order's money, from the ledger (the truth)."""

    totals: ledger.LedgerTotals
    expires_at: datetime | None
    expired: bool
    expiring_soon: bool
    dispute_open: bool

    @property
    def capturable(self) -> int:
        return self.totals.capturable

    @property
    def refundable(self) -> int:
        return self.totals.refundable

    @property
    def version(self) -> int:
        """The ledger version the staff member sees: part of double-submit protection."""
        return self.totals.entries


def order_money(*, order: Order, now: datetime | None = None) -> OrderMoney:
    now = now or timezone.now()
    totals = ledger.ledger_totals(payment_intent_id=order.payment_intent_id)
    expires_at = authorization_expires_at(order=order) if order.payment_status == PaymentStatus.AUTHORIZED else None
    return OrderMoney(
        totals=totals,
        expires_at=expires_at,
        expired=bool(expires_at and expires_at <= now),
        expiring_soon=bool(expires_at and now < expires_at <= now + EXPIRY_WARNING_WINDOW),
        dispute_open=Dispute.objects.filter(payment_intent_id=order.payment_intent_id, is_open=True).exists(),
    )


@dataclass(frozen=True)
class OrderPage:
    lines: list[OrderLine]
    ledger_entries: list[LedgerEntry]
    disputes: list[Dispute]
    events: list[OrderEvent]
    money: OrderMoney
    shipment: dict[str, str] | None
    # Who acted, by user id (ledger rows and events store ``cus_…`` ids): "Full Name <email>".
    user_names: dict[str, str]


def order_page(*, order: Order, now: datetime | None = None) -> OrderPage:
    """Everything the read-only order page shows (one query per section, one for the staff names)."""
    events = list(OrderEvent.objects.filter(order_id=order.pk).order_by("created_at", "id"))
    entries = list(ledger.ledger_entries(payment_intent_id=order.payment_intent_id))
    shipment = None
    for event in events:  # the latest shipment recorded (orders.fulfillment)
        if event.type == "shipment_recorded":
            shipment = {k: str(v) for k, v in event.payload.items() if k in ("carrier", "tracking_number")}
    return OrderPage(
        lines=list(OrderLine.objects.filter(order_id=order.pk).order_by("position", "id")),
        ledger_entries=entries,
        disputes=list(Dispute.objects.filter(payment_intent_id=order.payment_intent_id).order_by("created_at", "id")),
        events=events,
        money=order_money(order=order, now=now),
        shipment=shipment,
        user_names=customer_selectors.users_display_names(
            user_ids={event.actor_user_id for event in events} | {entry.actor_user_id for entry in entries}
        ),
    )


def actor_display(*, actor: str, user_id: str, names: Mapping[str, str]) -> str:
    """Who did something, for staff: the user's name and email, else "Stripe", "System", "Customer"…

    A user id that matches no user (deleted, or a demo id) is shown after the actor's label.
    """
    label = Actor(actor).label if actor in Actor.values else (actor or "Unknown").capitalize()
    if not user_id:
        return str(label)
    return names.get(user_id) or f"{label} (unknown user {user_id})"
