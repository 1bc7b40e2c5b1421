"""Order locks, status transitions and events, and the ledger helpers every order service shares.

Lock order across the package: cart row, stock rows (by pk), order row, order counter, payment
session row (docs/orders.md).

The package's internal API (used by its sibling modules, never by other apps, which call the
services ``orders.services`` exports): ``order_lock``, ``display_id_next``, ``event_record``,
``ledger_amounts``, ``transition_apply``, ``refund_status_of``, ``payment_status_follow``,
``placement_ledger``. No module imports another's underscore names (tests/test_architecture.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.db import connection, transaction
from django.db.models import Max

from common import metrics
from common.actors import Actor
from common.errors import Conflict, NotFound, ValidationError
from orders.models import Order, OrderCounter, OrderEvent
from orders.transitions import payment_status_for_totals, transition_allowed, transition_path
from payments import gateway, ledger
from payments.ledger import LedgerEntryData
from payments.models import LedgerEntryKind, LedgerEntryStatus

logger = logging.getLogger(__name__)

ORDER_COUNTER = "order"


class InvalidTransition(Conflict):
    code = "invalid_transition"
    default_message = "This change is not allowed in the order's current state."


# --- Locks and small helpers ---------------------------------------------------------------


def order_lock(*, order_id: str) -> Order:
    """SELECT ... FOR UPDATE one order row (lock order: cart, stock rows, order, counter)."""
    order = Order.objects.select_for_update(of=("self",)).filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    return order


def display_id_next() -> int:
    """The next order number: an UPDATE ... RETURNING on the counter row (locked until commit).

    Gapless and sequential on PostgreSQL and SQLite alike. The counter row is taken last in the
    placement transaction, so the time it is held is a handful of inserts.
    """
    table = connection.ops.quote_name(OrderCounter._meta.db_table)
    sql = f"UPDATE {table} SET value = value + 1 WHERE name = %s RETURNING value"  # noqa: S608 - constant table name
    with connection.cursor() as cursor:
        cursor.execute(sql, [ORDER_COUNTER])
        row = cursor.fetchone()
        if row is None:  # first order ever (or a test database flushed): seed from existing orders
            start = Order.objects.aggregate(top=Max("display_id"))["top"] or 0
            OrderCounter.objects.bulk_create([OrderCounter(name=ORDER_COUNTER, value=start)], ignore_conflicts=True)
            cursor.execute(sql, [ORDER_COUNTER])
            row = cursor.fetchone()
    return int(row[0])


def event_record(
    *, order: Order, type: str, actor: str, user_id: str | None, payload: Mapping[str, Any] | None = None
) -> OrderEvent:
    return OrderEvent(order=order, type=type, actor=actor, actor_user_id=user_id or "", payload=dict(payload or {}))


def ledger_amounts(totals: ledger.LedgerTotals) -> dict[str, int]:
    return {
        "authorized": totals.authorized,
        "captured": totals.captured,
        "voided": totals.voided,
        "refunded": totals.refunded,
        "disputed": totals.disputed,
    }


def transition_apply(
    *,
    order: Order,
    field: str,
    target: str,
    actor: str,
    user_id: str | None,
    payload: Mapping[str, Any] | None = None,
) -> OrderEvent | None:
    """Move one status field of a *locked* order, or raise ``InvalidTransition``. Writes the event."""
    current = getattr(order, field)
    if current == target:
        return None
    if not transition_allowed(field=field, current=current, target=target):
        raise InvalidTransition(f"Cannot change {field} from {current} to {target}.", param=field)
    setattr(order, field, target)
    order.save(update_fields=[field, "updated_at"])
    event = event_record(
        order=order,
        type=f"{field}_changed",
        actor=actor,
        user_id=user_id,
        payload={"field": field, "from": current, "to": target, **(payload or {})},
    )
    event.save()
    logger.info(
        "order.transition order_id=%s field=%s from=%s to=%s actor=%s user_id=%s",
        order.id,
        field,
        current,
        target,
        actor,
        user_id or "",
    )
    return event


def order_transition(
    *,
    order_id: str,
    field: str,
    target: str,
    actor: str,
    user_id: str | None = None,
    reason: str = "",
) -> Order:
    """Change ``status`` or ``fulfillment_status`` under the order's row lock (one event).

    ``payment_status`` is not set by hand: it follows the ledger (``order_payment_sync`` and
    the payment operations below).
    """
    if field not in ("status", "fulfillment_status"):
        raise ValidationError("Only status and fulfillment_status can be changed directly.", param="field")
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        transition_apply(
            order=order, field=field, target=target, actor=actor, user_id=user_id, payload={"reason": reason}
        )
    return order


def refund_status_of(refund: dict[str, Any]) -> str:
    status = refund.get("status")
    if status == "succeeded":
        return LedgerEntryStatus.SUCCEEDED
    if status in ("failed",):
        return LedgerEntryStatus.FAILED
    if status == "canceled":
        return LedgerEntryStatus.CANCELED
    return LedgerEntryStatus.PENDING


def payment_status_follow(
    *,
    order: Order,
    before: ledger.LedgerTotals,
    actor: str,
    user_id: str | None,
    event_type: str,
    extra: dict[str, Any],
) -> ledger.LedgerTotals:
    """Inside a transaction with the order locked: move payment_status to what the ledger says; one event."""
    after = ledger.ledger_totals(payment_intent_id=order.payment_intent_id)
    target = payment_status_for_totals(after)
    payload = {"amounts_before": ledger_amounts(before), "amounts_after": ledger_amounts(after), **extra}
    path = transition_path(field="payment_status", current=order.payment_status, target=target)
    if path is None:
        raise InvalidTransition(f"Cannot change payment_status from {order.payment_status} to {target}.")
    for step in path:
        transition_apply(
            order=order, field="payment_status", target=step, actor=actor, user_id=user_id, payload=payload
        )
    if not path and ledger_amounts(before) != ledger_amounts(after):  # money moved, same status (a 2nd partial refund)
        event_record(order=order, type=event_type, actor=actor, user_id=user_id, payload=payload).save()
    metrics.record_money_moved(
        currency=order.currency_code,
        captured=after.captured - before.captured,
        refunded=after.refunded - before.refunded,
    )  # noqa: E501
    return after


def placement_ledger(*, payment_intent: dict[str, Any], order_id: str, actor: str) -> list[LedgerEntryData]:
    pi_id = payment_intent["id"]
    amount = int(payment_intent["amount"])
    currency = str(payment_intent["currency"]).lower()
    charge_id = gateway.latest_charge_id(payment_intent) or ""
    entries = [
        LedgerEntryData(
            payment_intent_id=pi_id,
            order_id=order_id,
            kind=LedgerEntryKind.AUTHORIZATION,
            amount=amount,
            currency_code=currency,
            idempotency_key=ledger.key_authorization(payment_intent_id=pi_id),
            stripe_object_id=charge_id,
            actor=Actor.STRIPE,
        )
    ]
    if payment_intent.get("status") == "succeeded":
        received = payment_intent.get("amount_received")
        entries.append(
            LedgerEntryData(
                payment_intent_id=pi_id,
                order_id=order_id,
                kind=LedgerEntryKind.CAPTURE,
                amount=int(received) if isinstance(received, int) and received > 0 else amount,
                currency_code=currency,
                idempotency_key=ledger.key_capture(charge_id=charge_id, payment_intent_id=pi_id),
                stripe_object_id=charge_id,
                actor=Actor.STRIPE,
            )
        )
    return entries
