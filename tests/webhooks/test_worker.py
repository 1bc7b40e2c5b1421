"""A real Celery worker (subprocess, Redis broker, the test database) processes the inbox."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from orders.models import Order
from tests.factories.orders import PaymentSessionFactory
from tests.webhooks.conftest import build_event, deliver, make_cart, pay_cart, shop_for, stripe_example
from webhooks.models import WebhookEvent, WebhookEventStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

Status = WebhookEventStatus


def wait_for(predicate: Callable[[], bool], worker, timeout: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; worker log tail:\n{worker.output()[-3000:]}")
        time.sleep(0.1)


def _row(event_id: str) -> WebhookEvent:
    return WebhookEvent.objects.get(stripe_event_id=event_id)


def test_worker_processes_event_and_places_order(raw_client, webhook_secret, localstripe, celery_broker):
    ignored = build_event("customer.created", {"id": "cus_worker", "object": "customer"})
    assert deliver(raw_client, ignored).status_code == 200
    wait_for(lambda: _row(ignored["id"]).status == Status.PROCESSED, celery_broker)

    shop = shop_for("usd")
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(stock=5), 2)]))
    intent = localstripe.request("GET", f"/v1/payment_intents/{paid.payment_intent_id}")
    event = build_event("payment_intent.amount_capturable_updated", intent)
    assert deliver(raw_client, event).status_code == 200
    wait_for(lambda: _row(event["id"]).status == Status.PROCESSED, celery_broker)

    order = Order.objects.get(payment_intent_id=paid.payment_intent_id)
    assert (order.cart_id, order.payment_status, order.total) == (paid.cart_id, "authorized", paid.total)
    row = _row(event["id"])
    assert row.attempts == 1 and row.last_error.startswith("order_created")


def test_worker_retries_then_dead_letters(raw_client, webhook_secret, localstripe, celery_broker):
    """Stripe answers 404 for this intent on every attempt: 1 try + WEBHOOK_MAX_RETRIES (2) retries, then failed."""
    PaymentSessionFactory(payment_intent_id="pi_worker_unknown")
    obj = stripe_example("payment_intent") | {"id": "pi_worker_unknown", "status": "succeeded"}
    event = build_event("payment_intent.succeeded", obj)
    assert deliver(raw_client, event).status_code == 200

    wait_for(lambda: _row(event["id"]).status == Status.FAILED, celery_broker)
    row = _row(event["id"])
    assert row.attempts == 3
    assert row.last_error.startswith("NotFound:")
    assert row.failed_at is not None
    log = celery_broker.output()
    # Celery scheduled two retries with backoff: one "Task …[id] retry: Retry in Ns" line each (a
    # line may also carry the Retry exception's text, which says "Retry in" again).
    retries = [line for line in log.splitlines() if "] retry: Retry in" in line]
    assert len(retries) == 2, retries
    assert "webhook.dead_letter" in log
