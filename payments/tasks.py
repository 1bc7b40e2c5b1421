"""Celery tasks of payments: take ids, call one service. Periodic ones are in CELERY_BEAT_SCHEDULE."""

from __future__ import annotations

import logging

from celery import shared_task

from catalog import services as catalog_services
from common.errors import ApplicationError
from payments import services

logger = logging.getLogger(__name__)


@shared_task(name="payments.tasks.release_expired_reservations")
def release_expired_reservations() -> int:
    """Drop stock reservations past their ``expires_at`` (beat: every minute)."""
    released = catalog_services.stock_reservations_expire()
    if released:
        logger.info("stock.reservations_expired rows=%s", released)
    return released


@shared_task(name="payments.tasks.payment_method_save")
def payment_method_save(payment_intent_id: str) -> bool:
    """Attach an authorized intent's card to the shopper's Customer where Stripe did not (localstripe).

    Only enqueued when ``STRIPE_SEND_SETUP_FUTURE_USAGE`` is off. Best effort: a failure is
    logged, never raised (it runs from on_commit hooks, possibly eagerly inside a request).
    """
    try:
        return services.payment_method_save_from_intent(payment_intent_id=payment_intent_id)
    except ApplicationError as exc:
        logger.warning("payment_method.save_failed payment_intent_id=%s code=%s", payment_intent_id, exc.code)
        return False


@shared_task(name="payments.tasks.stripe_object_mirror")
def stripe_object_mirror(object_type: str, object_id: str) -> bool:
    """Copy a Stripe object's current state into dj-stripe's tables (enqueued on commit by the
    payment-session and saved-card services). Best effort: the mirror is a read-only copy, a
    failure is logged, never raised; the next write or webhook of the object mirrors it again."""
    try:
        return services.stripe_object_mirror(object_type=object_type, object_id=object_id)
    except ApplicationError as exc:
        logger.warning("stripe_mirror.read_failed object=%s id=%s code=%s", object_type, object_id, exc.code)
        return False
