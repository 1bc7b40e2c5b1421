"""Fulfillment writes for staff: fulfilled -> shipped (carrier, tracking number) -> delivered.

Each move goes through ``orders.services.order_transition`` (the transition table and its
``fulfillment_status_changed`` event) inside one transaction that first takes the order's
row lock and refuses while a dispute on the order's payment is open: shipping goods whose
payment is being charged back only adds to the loss.

Packing and shipping (to ``fulfilled`` / ``shipped``) also need a live payment
(``LIVE_PAYMENT_STATUSES``): an order whose authorization was canceled or expired, whose
payment was fully refunded, or that was never paid raises ``PaymentNotLive`` (409
``payment_not_live``), checked under the same row lock. Delivery records a fact about goods
already handed to the carrier and is not refused.

Shipping and delivery each owe the shopper one email (``orders.services.notifications``),
recorded in the same transaction. Delivery of an order whose money is settled (nothing left to
capture: ``orders.transitions.order_completable``) also moves ``status`` to ``completed``.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.db import transaction

from common.actors import Actor
from common.errors import Conflict, ValidationError
from orders import services
from orders.models import FulfillmentStatus, Order, OrderEvent, OrderNotificationKind, OrderStatus, PaymentStatus
from orders.transitions import order_completable
from payments import disputes

logger = logging.getLogger(__name__)

# Payment states in which the shop holds or has the shopper's money for the goods.
LIVE_PAYMENT_STATUSES = frozenset(
    {
        PaymentStatus.AUTHORIZED,
        PaymentStatus.PARTIALLY_CAPTURED,
        PaymentStatus.CAPTURED,
        PaymentStatus.PARTIALLY_REFUNDED,
    }
)
# Moves that send goods out: refused without a live payment.
_NEEDS_LIVE_PAYMENT = frozenset({FulfillmentStatus.FULFILLED, FulfillmentStatus.SHIPPED})


class DisputeOpen(Conflict):
    code = "dispute_open"
    default_message = "A dispute on this order's payment is open: fulfillment is on hold until it is closed."


class PaymentNotLive(Conflict):
    code = "payment_not_live"
    default_message = (
        "This order's payment is not live (never paid, canceled, expired or refunded): "
        "it cannot be fulfilled or shipped."
    )


def payment_live(*, order: Order) -> bool:
    """Whether the order's payment allows packing and shipping (``LIVE_PAYMENT_STATUSES``)."""
    return order.payment_status in LIVE_PAYMENT_STATUSES


def _fulfillment_move(
    *,
    order_id: str,
    target: str,
    actor: str,
    user_id: str | None,
    reason: str = "",
    shipment: dict[str, str] | None = None,
) -> Order:
    with transaction.atomic():
        order = services.order_lock(order_id=order_id)  # lock first, then check, then move
        if disputes.dispute_open_for_payment_intent(payment_intent_id=order.payment_intent_id):
            raise DisputeOpen()
        if target in _NEEDS_LIVE_PAYMENT and not payment_live(order=order):
            raise PaymentNotLive()
        order = services.order_transition(
            order_id=order_id,
            field="fulfillment_status",
            target=target,
            actor=actor,
            user_id=user_id,
            reason=reason,
        )
        if shipment is not None:
            OrderEvent.objects.create(
                order=order, type="shipment_recorded", actor=actor, actor_user_id=user_id or "", payload=shipment
            )
        if target == FulfillmentStatus.SHIPPED:
            services.order_notification_record(order=order, kind=OrderNotificationKind.SHIPPED, payload=shipment)
        if target == FulfillmentStatus.DELIVERED:
            services.order_notification_record(order=order, kind=OrderNotificationKind.DELIVERED)
            if order_completable(order=order):
                order = services.order_transition(
                    order_id=order_id,
                    field="status",
                    target=OrderStatus.COMPLETED,
                    actor=actor,
                    user_id=user_id,
                    reason="delivered and paid",
                )
    logger.info(
        "order.fulfillment order_id=%s to=%s actor=%s user_id=%s%s",
        order_id,
        target,
        actor,
        user_id or "",
        "".join(f" {key}={value}" for key, value in (shipment or {}).items()),
    )
    return order


def order_fulfil(*, order_id: str, actor: str = Actor.STAFF, user_id: str | None = None, reason: str = "") -> Order:
    """Packed and ready: not_fulfilled -> fulfilled."""
    return _fulfillment_move(
        order_id=order_id, target=FulfillmentStatus.FULFILLED, actor=actor, user_id=user_id, reason=reason
    )


def order_ship(
    *,
    order_id: str,
    carrier: str,
    tracking_number: str,
    tracking_url: str = "",
    actor: str = Actor.STAFF,
    user_id: str | None = None,
    reason: str = "",
) -> Order:
    """Handed to the carrier: fulfilled -> shipped, with the carrier and tracking number (and
    the carrier's tracking page, when given: an http(s) URL) recorded; the shopper is emailed."""
    carrier, tracking_number, tracking_url = carrier.strip(), tracking_number.strip(), tracking_url.strip()
    if not carrier:
        raise ValidationError("The carrier is required.", param="carrier")
    if not tracking_number:
        raise ValidationError("The tracking number is required.", param="tracking_number")
    if tracking_url and (urlsplit(tracking_url).scheme not in ("http", "https") or not urlsplit(tracking_url).netloc):
        raise ValidationError("The tracking URL must be an http(s) URL.", param="tracking_url")
    shipment = {"carrier": carrier[:100], "tracking_number": tracking_number[:100]}
    if tracking_url:
        shipment["tracking_url"] = tracking_url[:500]
    return _fulfillment_move(
        order_id=order_id,
        target=FulfillmentStatus.SHIPPED,
        actor=actor,
        user_id=user_id,
        reason=reason,
        shipment=shipment,
    )


def order_deliver(*, order_id: str, actor: str = Actor.STAFF, user_id: str | None = None, reason: str = "") -> Order:
    """Received by the customer: shipped -> delivered (and ``completed`` when the money is settled)."""
    return _fulfillment_move(
        order_id=order_id, target=FulfillmentStatus.DELIVERED, actor=actor, user_id=user_id, reason=reason
    )
