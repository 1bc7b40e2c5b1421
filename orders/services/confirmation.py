"""The order confirmation email (sent once per order, from a Celery task enqueued on commit)."""

from __future__ import annotations

import logging

from django.utils import timezone

from orders import selectors
from orders.models import Order, OrderEvent
from payments.models import Actor

logger = logging.getLogger(__name__)


def order_confirmation_send(*, order_id: str) -> bool:
    """Send the confirmation email once. Returns whether this call sent it.

    The ``confirmation_sent_at`` claim is an atomic conditional UPDATE, so two workers (a task
    retried, delivered twice) cannot both send. If sending raises, the claim is undone so the
    task's retry can send.
    """
    from orders import emails

    now = timezone.now()
    claimed = Order.objects.filter(pk=order_id, confirmation_sent_at__isnull=True).update(confirmation_sent_at=now)
    if not claimed:
        return False
    order = selectors.order_get(order_id=order_id)
    try:
        emails.order_confirmation_email(order=order).send()
    except Exception:
        Order.objects.filter(pk=order_id, confirmation_sent_at=now).update(confirmation_sent_at=None)
        raise
    OrderEvent.objects.create(order=order, type="confirmation_sent", actor=Actor.SYSTEM, payload={"to": "customer"})
    logger.info("order.confirmation_sent order_id=%s display_id=%s", order.id, order.display_id)
    return True
