"""End to end with localstripe's own webhook delivery to a live test server.

localstripe signs and POSTs its events (``payment_intent.succeeded`` after a charge is taken)
to ``{live_server}/webhooks/stripe``; the inbox stores them and (eager Celery in tests) the
handler runs on commit, in the server's request thread.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from orders.models import Order
from payments.models import LedgerEntry, LedgerEntryKind, LedgerEntryStatus
from tests.orders.conftest import complete
from tests.webhooks.conftest import WEBHOOK_PATH, make_cart, pay_cart, shop_for
from webhooks.models import WebhookEvent, WebhookEventStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            rows = list(WebhookEvent.objects.values_list("type", "status", "last_error"))
            raise AssertionError(f"timed out; inbox: {rows}")
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def no_logging_errors(monkeypatch):
    """Every log line of the test, the live server's threads included, is written: a record a
    handler cannot emit (a closed stream, a bad format argument) fails the test instead of
    printing ``--- Logging error ---`` into the run's output."""
    failures: list[str] = []
    original = logging.Handler.handleError

    def handle_error(handler: logging.Handler, record: logging.LogRecord) -> None:
        failures.append(f"{handler!r} {record.name}: {record.msg!r} ({sys.exc_info()[1]!r})")
        original(handler, record)

    monkeypatch.setattr(logging.Handler, "handleError", handle_error)
    yield
    assert not failures, failures


@pytest.fixture
def delivered_to_live_server(localstripe, live_server, webhook_secret):
    localstripe.register_webhook("e2e", url=f"{live_server.url}{WEBHOOK_PATH}", secret=webhook_secret)
    return localstripe


def test_e2e_automatic_capture_order_created_by_webhook(delivered_to_live_server):
    """Pay; the shopper never comes back to ``complete``: localstripe's event alone places the order."""
    shop = shop_for("usd")
    paid = pay_cart(delivered_to_live_server, make_cart(shop, [(shop.variant(stock=4), 3)]), capture_method="automatic")

    wait_for(
        lambda: WebhookEvent.objects.filter(
            type="payment_intent.succeeded",
            payment_intent_id=paid.payment_intent_id,
            status=WebhookEventStatus.PROCESSED,
        ).exists()
    )
    order = Order.objects.get(cart_id=paid.cart_id)
    assert (order.payment_status, order.total, order.payment_intent_id) == (
        "captured",
        paid.total,
        paid.payment_intent_id,
    )
    row = WebhookEvent.objects.get(type="payment_intent.succeeded", payment_intent_id=paid.payment_intent_id)
    assert row.status == WebhookEventStatus.PROCESSED
    assert row.last_error.startswith("order_created")
    assert row.api_version == "2017-08-15"  # localstripe's own payload, verified with its own signature


def test_e2e_manual_capture_then_succeeded_updates_order(delivered_to_live_server):
    """complete -> authorized order; a capture at Stripe (dashboard) -> payment_intent.succeeded -> captured."""
    shop = shop_for("usd")
    paid = pay_cart(delivered_to_live_server, make_cart(shop, [(shop.variant(), 1)]))
    response = complete(APIClient(), paid.cart_id, paid.payment_intent_id)
    # The stand-in's authorization event races complete: whichever places the order first, complete
    # answers it (201 when complete placed it, 200 when the webhook had).
    assert response.status_code in (200, 201)
    assert response.json()["order"]["payment_status"] == "authorized"

    delivered_to_live_server.request("POST", f"/v1/payment_intents/{paid.payment_intent_id}/capture", {})
    wait_for(
        lambda: WebhookEvent.objects.filter(
            type="payment_intent.succeeded",
            payment_intent_id=paid.payment_intent_id,
            status=WebhookEventStatus.PROCESSED,
        ).exists()
    )
    assert Order.objects.get(cart_id=paid.cart_id).payment_status == "captured"
    row = WebhookEvent.objects.get(type="payment_intent.succeeded", payment_intent_id=paid.payment_intent_id)
    assert row.status == WebhookEventStatus.PROCESSED
    # The stand-in sends charge.captured and payment_intent.succeeded together, as Stripe does,
    # and an earlier event may still be in flight: every handler re-reads the intent, so whichever
    # is processed first after the capture records it; the ledger has the capture once.

    def captured_notes() -> int:
        notes = WebhookEvent.objects.filter(payment_intent_id=paid.payment_intent_id).values_list(
            "last_error", flat=True
        )
        return sum("authorized->captured" in (note or "") for note in notes)

    wait_for(lambda: captured_notes() >= 1)
    captures = LedgerEntry.objects.filter(payment_intent_id=paid.payment_intent_id, kind=LedgerEntryKind.CAPTURE)
    assert [(row.amount, row.status) for row in captures] == [(paid.total, LedgerEntryStatus.SUCCEEDED)]
