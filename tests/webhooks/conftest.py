"""Webhook test helpers: signed deliveries, events built from Stripe's example objects, paid carts.

Events for types localstripe never sends (charge.refunded, refund.*, charge.dispute.*,
amount_capturable_updated, ...) are built from the example objects of Stripe's OpenAPI
fixtures (``stripe_fixtures.json``, a subset of ``../shared/stripe/fixtures3.json``, MIT),
with the ids of the real localstripe objects filled in, and signed here with the test
secret exactly as Stripe signs (``t=<ts>,v1=HMAC-SHA256(secret, "<ts>.<body>")``).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from catalog import services as catalog_services
from common.ids import new_id
from payments import gateway
from payments.models import PaymentSessionStatus
from tests.factories.orders import PaymentSessionFactory
from tests.orders.conftest import Shop, make_cart, pay_cart, shop_for  # noqa: F401 - helpers re-exported
from tests.plugins.celery_worker import celery_broker, celery_unconsumed_queue, celery_worker  # noqa: F401
from tests.plugins.localstripe import localstripe, localstripe_server  # noqa: F401 - fixtures
from webhooks.models import WebhookEvent

WEBHOOK_SECRET = "whsec_test_current_5f2b9c0e7a1d4c3b"
OLD_WEBHOOK_SECRET = "whsec_test_previous_0a9b8c7d6e5f4a3b"
FIXTURES = Path(__file__).with_name("stripe_fixtures.json")
WEBHOOK_PATH = "/webhooks/stripe"


@cache
def _examples() -> dict[str, Any]:
    return json.loads(FIXTURES.read_text())["resources"]


def stripe_example(name: str) -> dict[str, Any]:
    """A fresh copy of Stripe's example ``name`` object (dispute, refund, charge, payment_intent, event)."""
    return copy.deepcopy(_examples()[name])


def build_event(
    event_type: str, obj: dict[str, Any], *, event_id: str | None = None, created: int | None = None
) -> dict[str, Any]:
    event = stripe_example("event")
    event.update(
        id=event_id or new_id("evt_test"),
        type=event_type,
        created=int(time.time()) if created is None else created,
        livemode=False,
        api_version="2026-05-27.dahlia",
        data={"object": obj},
    )
    return event


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, indent=2, sort_keys=True).encode()


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    ts = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={signature}"


def deliver(
    client: Client,
    event: dict[str, Any] | bytes,
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
    signature: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """POST one delivery the way Stripe does (raw JSON body, Stripe-Signature header)."""
    payload = event if isinstance(event, bytes) else encode(event)
    all_headers = dict(headers or {})
    if signature is None:
        signature = sign(payload, secret, timestamp)
    if signature:
        all_headers["Stripe-Signature"] = signature
    return client.generic("POST", WEBHOOK_PATH, payload, content_type="application/json", headers=all_headers)


@pytest.fixture
def webhook_secret(settings: Any) -> str:
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_WEBHOOK_SECRETS_EXTRA = []
    return WEBHOOK_SECRET


@pytest.fixture
def raw_client() -> Client:
    return Client()


@pytest.fixture
def send(raw_client: Client, webhook_secret: str, django_capture_on_commit_callbacks: Any) -> Any:
    """Deliver one signed event and run its processing (eager Celery, on commit); return the inbox row."""

    def send(event_type: str, obj: dict[str, Any]) -> WebhookEvent:
        event = build_event(event_type, obj)
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(raw_client, event).status_code == 200
        return WebhookEvent.objects.get(stripe_event_id=event["id"])

    return send


def unconfirmed_cart() -> tuple[str, str]:
    """A cart with its stock held and a PaymentIntent the shopper has not confirmed yet: (cart id, intent id)."""
    shop = shop_for("usd")
    variant = shop.variant(stock=3)
    cart_id = make_cart(shop, [(variant, 1)])
    catalog_services.stock_reserve(cart_id=cart_id, quantities={variant.id: 1}, ttl=settings.RESERVATION_TTL)
    intent = gateway.payment_intent_create(
        amount=2070,
        currency="usd",
        metadata={"cart_id": cart_id},
        capture_method="manual",
        automatic_payment_methods=False,
        idempotency_key=f"test:{cart_id}:pi",
    )
    PaymentSessionFactory(cart_id=cart_id, payment_intent_id=intent["id"], status=PaymentSessionStatus.PENDING)
    return cart_id, intent["id"]
