"""payments.services.payment_session_upsert directly: idempotency keys, ordering, currency."""

from __future__ import annotations

import re
from typing import Any

import pytest

from common.errors import Conflict
from payments import gateway, services
from payments.models import PaymentSession, PaymentSessionStatus

pytestmark = pytest.mark.django_db


def _upsert(**overrides: Any) -> services.PaymentSessionResult:
    params: dict[str, Any] = {
        "cart_id": "cart_svc1",
        "cart_version": 1,
        "amount": 1000,
        "currency_code": "usd",
        "region_id": "reg_1",
        "email": "a@example.com",
        "customer_id": None,
        "user_id": None,
    }
    params.update(overrides)
    return services.payment_session_upsert(**params)


def test_every_stripe_write_has_a_deterministic_key(fake_stripe, sent_requests):
    first = _upsert()
    _upsert(cart_version=2, amount=1500)
    intent_id = first.session.payment_intent_id
    _upsert(cart_version=3, amount=1500, currency_code="eur")  # currency change: cancel + new intent

    posts = [r for r in sent_requests if r["method"] == "POST"]
    writes = [(r["url"].split("/v1/")[1], r["headers"].get("Idempotency-Key")) for r in posts]
    paths = [path for path, _ in writes]
    keys = [key for _, key in writes]
    assert paths == [
        "payment_intents",
        f"payment_intents/{intent_id}",
        f"payment_intents/{intent_id}/cancel",
        "payment_intents",
    ]
    assert re.fullmatch(r"cart:cart_svc1:pi:create:1:[0-9a-f]{16}", keys[0])
    assert re.fullmatch(rf"cart:cart_svc1:pi:{intent_id}:v2:update:[0-9a-f]{{16}}", keys[1])  # names the intent
    assert keys[2] == f"cart:cart_svc1:pi:{intent_id}:cancel"
    assert re.fullmatch(r"cart:cart_svc1:pi:create:2:[0-9a-f]{16}", keys[3])


def test_idempotency_key_digest_follows_the_request_body():
    assert services.idempotency_key("cart", "c", "pi", "create", 1, params={"amount": 1}) == services.idempotency_key(
        "cart", "c", "pi", "create", 1, params={"amount": 1}
    )
    assert services.idempotency_key("cart", "c", "pi", "create", 1, params={"amount": 1}) != services.idempotency_key(
        "cart", "c", "pi", "create", 1, params={"amount": 2}
    )


def test_currency_change_replaces_the_intent(fake_stripe):
    first = _upsert()
    second = _upsert(cart_version=2, currency_code="eur")

    assert second.created
    assert second.session.payment_intent_id != first.session.payment_intent_id
    assert second.session.currency_code == "eur"
    assert gateway.payment_intent_retrieve(id=first.session.payment_intent_id)["status"] == "canceled"
    assert PaymentSession.objects.get(pk=first.session.pk).is_active is False


def test_older_cart_version_cannot_overwrite_a_newer_session(fake_stripe):
    _upsert(cart_version=5, amount=1000)

    with pytest.raises(Conflict) as caught:
        _upsert(cart_version=4, amount=900)

    assert caught.value.code == "payment_session_stale"
    session = PaymentSession.objects.get(cart_id="cart_svc1")
    assert (session.cart_version, session.amount) == (5, 1000)


def test_session_status_mapping():
    status = services.session_status_for_intent
    assert status({"status": "requires_payment_method"}) == PaymentSessionStatus.PENDING
    assert status({"status": "requires_confirmation"}) == PaymentSessionStatus.PENDING
    assert status({"status": "requires_action"}) == PaymentSessionStatus.REQUIRES_ACTION
    assert status({"status": "requires_capture"}) == PaymentSessionStatus.AUTHORIZED
    assert status({"status": "succeeded"}) == PaymentSessionStatus.SUCCEEDED
    assert status({"status": "canceled"}) == PaymentSessionStatus.CANCELED
    assert status({"status": "requires_payment_method", "last_payment_error": {"code": "card_declined"}}) == (
        PaymentSessionStatus.FAILED
    )
