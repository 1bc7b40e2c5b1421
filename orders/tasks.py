"""Order tasks: take ids, call one service. Enqueued with ``transaction.on_commit``."""

from __future__ import annotations

from celery import shared_task

from orders import services


@shared_task(autoretry_for=(Exception,), retry_backoff=True, retry_backoff_max=600, max_retries=8)
def send_order_confirmation(order_id: str) -> bool:
    """Send the order confirmation email; a no-op if it was sent already."""
    return services.order_confirmation_send(order_id=order_id)


@shared_task(name="orders.warn_expiring_authorizations", ignore_result=True)
def warn_expiring_authorizations() -> int:
    """Beat: a warning event for every authorization lapsing within 24 h (orders.expiry)."""
    from orders import expiry

    return expiry.order_authorizations_expiry_warn()
