"""Order tasks: take ids, call one service. Enqueued with ``transaction.on_commit``; beat ones in
``settings.CELERY_BEAT_SCHEDULE``."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from orders import services

# The placement task normally sends within seconds; the sweep only picks up what it never sent.
CONFIRMATION_RESEND_AFTER = timedelta(minutes=5)
NOTIFICATION_RESEND_AFTER = timedelta(minutes=5)
PAYMENT_OPERATIONS_RESUME_AFTER = timedelta(minutes=5)
# An email retry waits unacked in the worker for its countdown: capped below the broker's 45 s
# visibility timeout (tests/test_celery_config.py), or a second worker gets it meanwhile. 26 retries
# at up to 30 s span about the 11 minutes 16 retries at up to 60 s did.
EMAIL_RETRY = {"autoretry_for": (Exception,), "retry_backoff": True, "retry_backoff_max": 30, "max_retries": 26}


@shared_task(**EMAIL_RETRY)
def send_order_confirmation(order_id: str) -> bool:
    """Send the order confirmation email; a no-op if it was sent already (or another worker holds the claim)."""
    return services.order_confirmation_send(order_id=order_id)


@shared_task(name="orders.resend_confirmations", ignore_result=True)
def resend_confirmations() -> int:
    """Beat: send the confirmations never sent (broker down at commit, worker killed mid-send)."""
    return services.order_confirmations_resend(older_than=CONFIRMATION_RESEND_AFTER)


@shared_task(**EMAIL_RETRY)
def send_order_notification(key: str) -> bool:
    """Send one shipped / delivered / canceled / refunded email; a no-op if it was sent (or is being sent)."""
    return services.order_notification_send(key=key)


@shared_task(name="orders.resend_notifications", ignore_result=True)
def resend_notifications() -> int:
    """Beat: send the notifications owed but never sent (broker down at commit, worker killed mid-send)."""
    return services.order_notifications_resend(older_than=NOTIFICATION_RESEND_AFTER)


@shared_task(name="orders.resume_payment_operations", ignore_result=True)
def resume_payment_operations() -> int:
    """Beat: finish staff captures / cancels / refunds left pending (orders.services.payment_ops)."""
    return services.payment_operations_resume(older_than=PAYMENT_OPERATIONS_RESUME_AFTER)


@shared_task(name="orders.warn_expiring_authorizations", ignore_result=True)
def warn_expiring_authorizations() -> int:
    """Beat: a warning event for every authorization lapsing within 24 h (orders.expiry)."""
    from orders import expiry

    return expiry.order_authorizations_expiry_warn()
