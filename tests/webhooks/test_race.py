"""Race on PostgreSQL: the storefront's ``complete`` and the ``amount_capturable_updated`` webhook
arrive at the same moment for each of 30 paid carts -> exactly one order per cart.

Real threads, real transactions (``transaction=True``). Stripe's signed events are POSTed first
(the inbox stores them and queues their tasks on a Redis queue nobody reads); then, per cart, two
threads start at a barrier: one runs the processing service as the worker would, retrying
transient errors (``cart_completing``) like the Celery task, the other calls ``complete``. The storefront thread retries ``409 cart_completing`` as a client would.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from catalog.models import StockLevel
from orders.models import Order, OrderEvent
from payments.models import LedgerEntry
from tests.orders.conftest import complete
from tests.webhooks.conftest import build_event, deliver, make_cart, pay_cart, shop_for
from webhooks import reconciliation, services
from webhooks.models import WebhookEvent, WebhookEventStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CARTS = 30
PAIRS_AT_ONCE = 8
STOCK = 45


def _storefront(paid: Any, barrier: threading.Barrier, jitter: float) -> tuple[int, dict[str, Any], int]:
    try:
        client = APIClient()
        barrier.wait(timeout=60)
        time.sleep(jitter)
        for conflicts in range(400):
            response = complete(client, paid.cart_id, paid.payment_intent_id)
            if response.status_code == 409 and response.json()["error"]["code"] == "cart_completing":
                time.sleep(0.02)
                continue
            return response.status_code, response.json(), conflicts
        raise AssertionError("the storefront never got an answer other than cart_completing")
    finally:
        connection.close()


def _webhook(event: dict[str, Any], barrier: threading.Barrier, jitter: float) -> tuple[WebhookEvent, int]:
    try:
        row = WebhookEvent.objects.get(stripe_event_id=event["id"])
        barrier.wait(timeout=60)
        time.sleep(jitter)
        retries = 0
        while True:
            try:
                services.webhook_event_process(event_id=row.id, last_attempt=False, retry_in=0.02)
                break
            except Exception as exc:
                if not reconciliation.is_transient(exc) or retries > 400:
                    raise
                retries += 1
                time.sleep(0.02)
        return WebhookEvent.objects.get(pk=row.pk), retries
    finally:
        connection.close()


def test_race_storefront_complete_vs_webhook_one_order_per_cart(localstripe, webhook_secret, celery_unconsumed_queue):
    shop = shop_for("usd")
    variant = shop.variant(stock=STOCK)  # one stock row shared by every cart: placements contend on it too
    carts = [pay_cart(localstripe, make_cart(shop, [(variant, 1)])) for _ in range(CARTS)]
    events = {
        paid.cart_id: build_event(
            "payment_intent.amount_capturable_updated",
            localstripe.request("GET", f"/v1/payment_intents/{paid.payment_intent_id}"),
        )
        for paid in carts
    }

    for event in events.values():  # Stripe's deliveries land in the inbox (their tasks are queued, unread)
        assert deliver(Client(), event).status_code == 200

    rng = random.Random(5)
    storefront: dict[str, tuple[int, dict[str, Any], int]] = {}
    webhook: dict[str, tuple[WebhookEvent, int]] = {}
    with ThreadPoolExecutor(max_workers=2 * PAIRS_AT_ONCE) as pool:
        futures = []
        for paid in carts:
            # Both start at the barrier; a few ms of jitter on one side lets either win.
            barrier = threading.Barrier(2)
            jitter = rng.choice([0.0, 0.002, 0.005, 0.01, 0.02])
            storefront_jitter, webhook_jitter = (jitter, 0.0) if rng.random() < 0.5 else (0.0, jitter)
            futures.append((paid.cart_id, "storefront", pool.submit(_storefront, paid, barrier, storefront_jitter)))
            futures.append(
                (paid.cart_id, "webhook", pool.submit(_webhook, events[paid.cart_id], barrier, webhook_jitter))
            )
        for cart_id, side, future in futures:
            (storefront if side == "storefront" else webhook)[cart_id] = future.result(timeout=180)

    orders = {order.cart_id: order for order in Order.objects.all()}
    assert Order.objects.count() == CARTS == len(orders)
    created_by_storefront = created_by_webhook = 0
    for paid in carts:
        order = orders[paid.cart_id]
        status, body, _ = storefront[paid.cart_id]
        assert status in (200, 201), body
        assert body["order"]["id"] == order.id
        created_by_storefront += status == 201
        row, _ = webhook[paid.cart_id]
        assert row.status == WebhookEventStatus.PROCESSED, row.last_error
        assert order.id in row.last_error
        created_by_webhook += row.last_error.startswith("order_created")
        assert (order.payment_status, order.total) == ("authorized", paid.total)
    assert created_by_storefront + created_by_webhook == CARTS  # exactly one creator per cart
    assert OrderEvent.objects.filter(type="order_placed").count() == CARTS
    assert LedgerEntry.objects.filter(kind="authorization").count() == CARTS
    assert StockLevel.objects.get(variant=variant).on_hand == STOCK - CARTS
    print(  # noqa: T201 - the report reads it with -s
        f"race: storefront created {created_by_storefront}, webhook created {created_by_webhook}, "
        f"storefront 409 cart_completing {sum(c for _, _, c in storefront.values())}, "
        f"webhook transient retries {sum(r for _, r in webhook.values())}"
    )


def test_race_same_event_delivered_concurrently_stored_once(webhook_secret, celery_unconsumed_queue):
    """Stripe (or a retry storm) sends one event eight times at once: one row, one processing queued."""
    event = build_event("customer.created", {"id": "cus_concurrent", "object": "customer"})
    barrier = threading.Barrier(8)

    def post() -> bool:
        try:
            barrier.wait(timeout=30)
            response = deliver(Client(), event)
            assert response.status_code == 200
            return response.json()["duplicate"]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        duplicates = list(pool.map(lambda _: post(), range(8)))
    assert sorted(duplicates) == [False] + [True] * 7
    assert WebhookEvent.objects.filter(stripe_event_id=event["id"]).count() == 1
    row = WebhookEvent.objects.get(stripe_event_id=event["id"])
    assert services.webhook_event_process(event_id=row.id).status == WebhookEventStatus.PROCESSED
    assert services.webhook_event_process(event_id=row.id) is None
