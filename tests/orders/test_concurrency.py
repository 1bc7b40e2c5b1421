"""Races with real threads on PostgreSQL and a real localstripe: exactly one order per cart, no oversell."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from carts.models import Cart, CartStatus
from catalog.models import StockLevel, StockReservation
from orders.models import CheckoutIncident, Order
from payments import gateway
from tests.orders.conftest import complete, make_cart, pay_cart, shop_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

THREADS = 32
ITERATIONS = 20


def _run_concurrently(n: int, target: Any) -> list[Any]:
    """Start ``n`` threads on a barrier, each calling ``target(i)``; return their results in order."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = target(i)
        except Exception as exc:  # noqa: BLE001 - reported by the assertions
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_complete_race_32_threads_one_order(localstripe):
    shop = shop_for("usd")
    started = time.monotonic()
    outcomes: Counter[str] = Counter()
    for _ in range(ITERATIONS):
        variant = shop.variant(stock=50)
        cart_id = make_cart(shop, [(variant, 2)])
        paid = pay_cart(localstripe, cart_id)

        def attempt(i: int, cart_id: str = cart_id, paid: Any = paid) -> tuple[int, dict[str, Any]]:
            response = complete(APIClient(), cart_id, paid.payment_intent_id)
            return response.status_code, response.json()

        results = _run_concurrently(THREADS, attempt)

        assert not [r for r in results if isinstance(r, Exception)], results
        statuses = Counter(status for status, _ in results)
        assert statuses[201] == 1, statuses
        assert set(statuses) <= {200, 201, 409}, statuses
        order_ids = {body["order"]["id"] for status, body in results if status in (200, 201)}
        assert len(order_ids) == 1
        for status, body in results:
            if status == 409:
                assert body["error"]["code"] == "cart_completing"
        assert Order.objects.filter(cart_id=cart_id).count() == 1
        assert StockLevel.objects.get(variant=variant).on_hand == 48  # decremented once
        assert Cart.objects.get(pk=cart_id).status == CartStatus.COMPLETED
        outcomes.update(str(s) for s, _ in results)
    elapsed = time.monotonic() - started
    print(f"\n{ITERATIONS} x {THREADS} threads: {dict(outcomes)} in {elapsed:.1f}s")
    assert Order.objects.count() == ITERATIONS


def test_oversell_at_completion_stock_3_ten_carts(localstripe):
    shop = shop_for("usd")
    variant = shop.variant(stock=3)
    paid_carts = []
    for _ in range(10):
        paid = pay_cart(localstripe, make_cart(shop, [(variant, 1)]))
        # simulated clock: this cart's hold expired before it was completed, so the stock is contested
        StockReservation.objects.filter(cart_id=paid.cart_id).update(expires_at=timezone.now() - timedelta(seconds=1))
        paid_carts.append(paid)
    assert not StockReservation.objects.filter(expires_at__gt=timezone.now()).exists()

    def attempt(i: int) -> tuple[int, dict[str, Any]]:
        paid = paid_carts[i]
        response = complete(APIClient(), paid.cart_id, paid.payment_intent_id)
        return response.status_code, response.json()

    results = _run_concurrently(10, attempt)

    assert not [r for r in results if isinstance(r, Exception)], results
    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 3, 409: 7}, results
    for status, body in results:
        if status == 409:
            assert (body["error"]["code"], body["error"]["param"]) == ("insufficient_inventory", variant.id)
    assert Order.objects.count() == 3
    assert StockLevel.objects.get(variant=variant).on_hand == 0
    intents = [gateway.payment_intent_retrieve(id=p.payment_intent_id) for p in paid_carts]
    assert Counter(i["status"] for i in intents) == {"requires_capture": 3, "canceled": 7}
    losers = {paid_carts[i].payment_intent_id for i, (status, _) in enumerate(results) if status == 409}
    assert {i["id"] for i in intents if i["status"] == "canceled"} == losers
    assert CheckoutIncident.objects.filter(resolution="payment_canceled").count() == 7
    assert Cart.objects.filter(status=CartStatus.ACTIVE).count() == 7


def test_oversell_never_negative_under_repeated_contention(localstripe):
    """Five rounds: stock 2, six contending carts each time; on_hand never drops below zero."""
    shop = shop_for("usd")
    for _ in range(5):
        variant = shop.variant(stock=2)
        paid_carts = []
        for _ in range(6):
            paid = pay_cart(localstripe, make_cart(shop, [(variant, 1)]), reserve=False)
            paid_carts.append(paid)

        results = _run_concurrently(
            6,
            lambda i, paid_carts=paid_carts: complete(
                APIClient(), paid_carts[i].cart_id, paid_carts[i].payment_intent_id
            ).status_code,
        )
        assert Counter(results) == {201: 2, 409: 4}
        assert StockLevel.objects.get(variant=variant).on_hand == 0
