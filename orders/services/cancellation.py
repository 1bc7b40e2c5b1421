"""Canceling an order whose authorization was released: by staff, or by Stripe (expiry, dashboard).

The order and its fulfillment move to ``canceled`` where the transition table allows it (not
once shipped). If nothing was fulfilled yet the goods go back on hand (stock was taken at
placement); packed goods are the warehouse's to put back. The stock rows are locked before the
order row (the fixed order: stock rows, then order), and the restock runs at most once per
order: only while ``fulfillment_status`` is ``not_fulfilled``, in the transaction that moves it
to ``canceled`` (final).

The shopper is emailed once (``orders.services.notifications``, kind ``canceled``, recorded in
the same transaction) with what became of the money: the hold released, or refunded. Not when
the goods already left (``shipped`` / ``delivered``: fulfillment is not canceled): staff look
at that order first.
"""

from __future__ import annotations

import logging

from django.db import transaction

from catalog import services as catalog_services
from orders import selectors
from orders.models import FulfillmentStatus, Order, OrderNotificationKind, OrderStatus
from orders.services.core import event_record, order_lock, transition_apply
from orders.services.notifications import order_notification_record
from orders.transitions import transition_allowed
from payments import ledger

logger = logging.getLogger(__name__)


def order_cancel_released(*, order_id: str, actor: str, user_id: str | None, reason: str) -> tuple[Order, int]:
    """Cancel the order (restocking its lines if unfulfilled). Returns (order, units restocked).

    Idempotent: an order already canceled is returned unchanged; a shipped one too (staff must
    look at it: the caller alerts).
    """
    order = selectors.order_get(order_id=order_id)
    if order.status == OrderStatus.CANCELED and order.fulfillment_status == FulfillmentStatus.CANCELED:
        return order, 0
    # Lines never change, so they are read before the transaction.
    unfulfilled = order.fulfillment_status == FulfillmentStatus.NOT_FULFILLED
    quantities = selectors.order_line_quantities(order_id=order_id) if unfulfilled else {}
    restocked: dict[str, int] = {}
    with transaction.atomic():
        if quantities:
            catalog_services.stock_lock(variant_ids=list(quantities))
        order = order_lock(order_id=order_id)
        if quantities and order.fulfillment_status == FulfillmentStatus.NOT_FULFILLED:
            restocked = catalog_services.stock_restock(quantities=quantities)
            if restocked:
                event_record(
                    order=order,
                    type="stock_restocked",
                    actor=actor,
                    user_id=user_id,
                    payload={"reason": reason, "quantities": restocked, "units": sum(restocked.values())},
                ).save()
        for field, target in (("status", OrderStatus.CANCELED), ("fulfillment_status", FulfillmentStatus.CANCELED)):
            if transition_allowed(field=field, current=getattr(order, field), target=target):
                transition_apply(
                    order=order, field=field, target=target, actor=actor, user_id=user_id, payload={"reason": reason}
                )
        if order.status == OrderStatus.CANCELED and order.fulfillment_status == FulfillmentStatus.CANCELED:
            totals = ledger.ledger_totals(payment_intent_id=order.payment_intent_id)
            order_notification_record(
                order=order,
                kind=OrderNotificationKind.CANCELED,
                payload={"released": totals.voided, "captured": totals.captured, "refunded": totals.refunded},
            )
    units = sum(restocked.values())
    logger.info(
        "order.canceled order_id=%s payment_intent_id=%s restocked_units=%s actor=%s user_id=%s reason=%s",
        *(order.id, order.payment_intent_id, units, actor, user_id or "", reason),
    )
    return order, units
