"""Payment sessions mirroring their PaymentIntent: database only, no Stripe call (docs/payments.md).

What the order and webhook code calls with an intent it already holds (retrieved or received):
copy its status into the session row, mark a decline failed and release the cart's stock
hold, retire a session whose money went back. Safe inside a transaction; idempotent. The
Stripe-calling half (create, update, confirm, cancel the cart's PaymentIntent) is
``payments.services.sessions``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from catalog import services as catalog_services
from common import metrics
from payments.models import PaymentSession, PaymentSessionStatus
from payments.services.attempts import payment_attempt_record_from_intent

logger = logging.getLogger(__name__)

_STATUS_FROM_INTENT = {
    "requires_payment_method": PaymentSessionStatus.PENDING,
    "requires_confirmation": PaymentSessionStatus.PENDING,
    "requires_action": PaymentSessionStatus.REQUIRES_ACTION,
    "processing": PaymentSessionStatus.PENDING,
    "requires_capture": PaymentSessionStatus.AUTHORIZED,
    "succeeded": PaymentSessionStatus.SUCCEEDED,
    "canceled": PaymentSessionStatus.CANCELED,
}


def session_status_for_intent(payment_intent: dict[str, Any]) -> str:
    """Map a PaymentIntent's status to ours; a declined attempt (back to requires_payment_method
    with ``last_payment_error``) is ``failed`` until the shopper tries again."""
    status = payment_intent.get("status") or ""
    if status == "requires_payment_method" and payment_intent.get("last_payment_error"):
        return PaymentSessionStatus.FAILED
    return _STATUS_FROM_INTENT.get(status, PaymentSessionStatus.PENDING)


def session_lock(*, payment_intent_id: str) -> PaymentSession | None:
    """The session of this PaymentIntent, row-locked (inside the caller's transaction)."""
    return PaymentSession.objects.select_for_update().filter(payment_intent_id=payment_intent_id).first()


def payment_session_sync_from_intent(*, payment_intent: dict[str, Any]) -> PaymentSession | None:
    """Copy a PaymentIntent's status into our session row (DB only: safe inside a transaction).

    For the order and webhook code: call it with the intent you retrieved or received. A change
    of status records the attempt outcome the intent shows (``payment_attempt_record_from_intent``:
    authorized, declined, 3-D Secure asked), once per fact. When the intent is authorized and
    the shopper asked to save the card, the attach (localstripe only, see
    ``payment_method_save_from_intent``) is enqueued on commit.
    """
    intent_id = payment_intent.get("id")
    if not intent_id:
        return None
    status = session_status_for_intent(payment_intent)
    # Inside a caller's transaction (order placement) no savepoint: nothing here is caught and
    # retried, an error rolls the caller's transaction back with it (two statements saved).
    with transaction.atomic(savepoint=False):
        session = session_lock(payment_intent_id=intent_id)
        if session is None:
            return None
        if session.status != status:
            metrics.record_payment_session_status(
                currency=session.currency_code,
                amount=int(payment_intent.get("amount") or session.amount),
                old=session.status,
                new=status,
            )  # noqa: E501
            session.status = status
            session.save(update_fields=["status", "updated_at"])
            payment_attempt_record_from_intent(payment_intent=payment_intent, session=session)
    if (
        status in (PaymentSessionStatus.AUTHORIZED, PaymentSessionStatus.SUCCEEDED)
        and session.save_payment_method
        and not settings.STRIPE_SEND_SETUP_FUTURE_USAGE
    ):
        transaction.on_commit(lambda: _card_save_enqueue(payment_intent_id=intent_id), robust=True)
    return session


def _card_save_enqueue(*, payment_intent_id: str) -> None:
    """After commit: queue saving the shopper's card. A broker outage is logged, never raised:
    the payment (and the order placed with it) stands; the card is just not saved."""
    from payments import tasks

    try:
        tasks.payment_method_save.delay(payment_intent_id)
    except Exception as exc:  # noqa: BLE001 - kombu raises OperationalError and friends
        logger.error(
            "payment_method.save_enqueue_failed payment_intent_id=%s error=%s", payment_intent_id, type(exc).__name__
        )


class _SessionNoLongerFailed(Exception):
    """Rolls back a stock release when a success overtook the decline (internal)."""


def payment_session_fail(*, payment_intent_id: str) -> PaymentSession | None:
    """The intent's payment failed: mark the session failed and release the cart's stock hold.

    Lock order (docs/orders.md, the same as placement's): cart row, stock rows (by pk), order
    row, order counter, payment session row last. So the session is marked failed in one short
    transaction, and the hold is released in a second one that locks the stock rows first and
    the session row after them: if a success overtook the decline meanwhile (events arrive in
    any order), that release is rolled back.
    """
    with transaction.atomic():
        session = session_lock(payment_intent_id=payment_intent_id)
        if session is None:
            return None
        if session.status in (PaymentSessionStatus.AUTHORIZED, PaymentSessionStatus.SUCCEEDED):
            return session  # a later success already won; events may arrive out of order
        session.status = PaymentSessionStatus.FAILED
        session.save(update_fields=["status", "updated_at"])
    try:
        with transaction.atomic():
            catalog_services.stock_release(cart_id=session.cart_id)  # stock rows, in pk order
            current = session_lock(payment_intent_id=payment_intent_id)  # then the session row
            if current is None or current.status != PaymentSessionStatus.FAILED:
                raise _SessionNoLongerFailed
    except _SessionNoLongerFailed:
        session.refresh_from_db()
        return session
    logger.info("payment_session.failed payment_session_id=%s cart_id=%s", session.id, session.cart_id)
    return session


def payment_session_release(
    *, payment_intent_id: str, status: str = PaymentSessionStatus.CANCELED
) -> PaymentSession | None:
    """The intent's money went back to the shopper (authorization canceled or payment refunded)
    and no order holds it: retire its session (inactive, ``status``).

    The cart's next payment-session call then creates a fresh PaymentIntent instead of
    returning this one (a refunded intent still says ``succeeded``). DB only: safe inside a
    transaction; idempotent.
    """
    with transaction.atomic():
        session = session_lock(payment_intent_id=payment_intent_id)
        if session is None:
            return None
        if not session.is_active and session.status == status:
            return session
        if session.status != status:
            metrics.record_payment_session_status(
                currency=session.currency_code, amount=session.amount, old=session.status, new=status
            )
        session.is_active = False
        session.status = status
        session.save(update_fields=["is_active", "status", "updated_at"])
    logger.info(
        "payment_session.released payment_session_id=%s cart_id=%s payment_intent_id=%s status=%s",
        session.id,
        session.cart_id,
        payment_intent_id,
        status,
    )
    return session
