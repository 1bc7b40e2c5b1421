"""Stripe event handlers: thin, idempotent, order-independent.

Each handler finds the PaymentIntent the event is about and calls one service:

* every ``payment_intent.*`` / ``charge.*`` / ``refund.*`` money event ->
  ``webhooks.reconciliation.payment_intent_reconcile``, which re-reads the PaymentIntent
  (with its charge and refunds) from Stripe and converges order, ledger and payment
  session on it through the orders/payments services. The event's snapshot is only used
  to find the PaymentIntent id, so duplicates and any delivery order end in the same state.
* ``charge.dispute.*`` -> ``payments.disputes.dispute_upsert_from_stripe`` with the event's
  object (localstripe stores no disputes, so there is nothing to re-read; the upsert is
  monotonic instead), then an order event through the orders service.
* any other type -> stored and acknowledged, nothing else.

A handler returns a short note for the inbox row, raises a transient error for a retry, or
raises ``PermanentEventError`` when no retry can help (dead letter at once, staff alert).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from common import metrics
from common.actors import Actor
from common.errors import ApplicationError
from orders import selectors as order_selectors
from orders import services as order_services
from payments import disputes, gateway
from payments import selectors as payment_selectors
from webhooks import reconciliation

logger = logging.getLogger(__name__)

Event = dict[str, Any]
Handler = Callable[[Event], str]


class PermanentEventError(Exception):
    """Processing this event cannot succeed by retrying; it goes to the dead letters at once."""


def _object(event: Event) -> dict[str, Any]:
    obj = (event.get("data") or {}).get("object")
    if not isinstance(obj, dict) or not obj.get("id"):
        raise PermanentEventError(f"Event {event.get('id')} has no data.object with an id.")
    return obj


def _reconcile(event: Event) -> str:
    obj = _object(event)
    if obj.get("object") in ("charge", "refund"):
        gateway.mirror(obj)  # the PaymentIntent itself is mirrored by payment_intent_reconcile
    payment_intent_id = payment_selectors.payment_intent_id_of(stripe_object=obj)  # reads the charge if needed
    if not payment_intent_id:
        return f"ignored: {obj.get('object')} {obj.get('id')} belongs to no PaymentIntent"
    try:
        outcome = reconciliation.payment_intent_reconcile(payment_intent_id=payment_intent_id, actor=Actor.STRIPE)
    except reconciliation.NeedsAttention as exc:
        logger.error("staff_alert kind=paid_without_order event=%s %s", event.get("id"), exc.message)
        raise PermanentEventError(exc.message) from exc
    return outcome.describe()


def payment_intent_canceled(event: Event) -> str:
    note = _reconcile(event)
    obj = _object(event)
    if "order_updated" in note:
        # An authorization voided or expired on an order: someone must look at it.
        metrics.record_payment_canceled(currency=str(obj.get("currency") or ""))
        logger.error(
            "staff_alert kind=authorization_canceled payment_intent_id=%s reason=%s %s",
            obj.get("id"),
            obj.get("cancellation_reason") or "",
            note,
        )
    return note


def dispute(event: Event) -> str:
    obj = _object(event)
    gateway.mirror(obj)
    payment_intent_id = disputes.dispute_payment_intent_id(dispute=obj)
    order = (
        order_selectors.order_get_by_payment_intent(payment_intent_id=payment_intent_id) if payment_intent_id else None
    )
    event_type = str(event.get("type") or "")
    change = disputes.dispute_upsert_from_stripe(
        dispute=obj,
        payment_intent_id=payment_intent_id,
        order_id=order.id if order else "",
        funds_withdrawn=event_type == "charge.dispute.funds_withdrawn",
        funds_reinstated=event_type == "charge.dispute.funds_reinstated",
    )
    if change.is_noop:
        return f"dispute {obj['id']} unchanged"
    if order is not None:
        order_services.order_dispute_record(
            order_id=order.id,
            dispute_id=change.dispute.stripe_dispute_id,
            created=change.created,
            changed=change.changed,
            actor=Actor.STRIPE,
        )
    if change.created:
        logger.error(
            "staff_alert kind=dispute_opened dispute=%s payment_intent_id=%s order_id=%s amount=%s currency=%s "
            "reason=%s evidence_due_by=%s",
            change.dispute.stripe_dispute_id,
            payment_intent_id,
            order.id if order else "",
            change.dispute.amount,
            change.dispute.currency_code,
            change.dispute.reason,
            change.dispute.evidence_due_by.isoformat() if change.dispute.evidence_due_by else "",
        )
    return (
        f"dispute {obj['id']} {'created' if change.created else 'updated ' + ','.join(change.changed)} "
        f"status={change.dispute.status} open={change.dispute.is_open}"
    )


HANDLERS: dict[str, Handler] = {
    "payment_intent.amount_capturable_updated": _reconcile,
    "payment_intent.succeeded": _reconcile,
    "payment_intent.payment_failed": _reconcile,
    "payment_intent.canceled": payment_intent_canceled,
    "payment_intent.requires_action": _reconcile,
    "payment_intent.processing": _reconcile,
    "payment_intent.partially_funded": _reconcile,
    "charge.succeeded": _reconcile,
    "charge.captured": _reconcile,
    "charge.refunded": _reconcile,
    "charge.failed": _reconcile,
    "charge.expired": _reconcile,
    "charge.refund.updated": _reconcile,
    "refund.created": _reconcile,
    "refund.updated": _reconcile,
    "refund.failed": _reconcile,
    "charge.dispute.created": dispute,
    "charge.dispute.updated": dispute,
    "charge.dispute.closed": dispute,
    "charge.dispute.funds_withdrawn": dispute,
    "charge.dispute.funds_reinstated": dispute,
}

# Types that reconcile the event's PaymentIntent (re-read from Stripe after the event arrived).
RECONCILING = frozenset(t for t, h in HANDLERS.items() if h in (_reconcile, payment_intent_canceled))
# Types whose whole handling is that reconcile, nothing taken from the event's snapshot (the intent
# is re-read and mirrored): a reconcile of their intent that started after they arrived handled them
# too, so webhooks.services settles them with it (coalescing) instead of re-reading Stripe per event.
# Not charge/refund events (their handler mirrors the snapshot) nor payment_intent.canceled (its alert).
COALESCIBLE = frozenset(t for t, h in HANDLERS.items() if h is _reconcile and t.startswith("payment_intent."))


def dispatch(*, event: Event) -> str:
    """Run the handler of this event's type; unknown types are acknowledged with a note."""
    handler = HANDLERS.get(str(event.get("type") or ""))
    if handler is None:
        return f"ignored: no handler for {event.get('type')}"
    try:
        return handler(event)
    except ApplicationError as exc:
        if reconciliation.is_transient(exc):
            raise
        if isinstance(exc, reconciliation.NeedsAttention):
            raise PermanentEventError(exc.message) from exc
        raise
