"""A saved or tokenized card: the PaymentIntent is created and confirmed in ONE Stripe call.

Declines, 3-D Secure and unknown outcomes keep their meaning (tests/payments/test_saved_cards.py
and test_card_token.py cover the outcomes end to end); these pin the single call and the retry.
"""

from __future__ import annotations

import pytest

from payments.models import PaymentAttempt, PaymentSession, PaymentSessionStatus
from payments.services import stripe_customer_get_or_create
from tests.factories import UserFactory, VariantFactory
from tests.helpers import DECLINED_AT_CONFIRM, THREE_D_SECURE, VISA, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada_with_card(fake_stripe):
    def make(number: str = VISA) -> tuple[str, str]:
        user = UserFactory()
        customer = stripe_customer_get_or_create(user_id=user.pk)
        return token_for(user), fake_stripe.browser.saved_card(customer, number)

    return make


def _intent_posts(fake_stripe) -> list[dict]:
    return [r for r in fake_stripe.server.requests_log(method="POST") if r["path"].startswith("/v1/payment_intents")]


def test_saved_card_is_created_and_confirmed_in_one_call(shop, fake_stripe, ada_with_card):
    bearer, card = ada_with_card()
    cart = shop.cart((VariantFactory(prices={"usd": 2000}), 1), token=bearer)
    fake_stripe.server.requests_clear()

    response = shop.pay(cart["id"], token=bearer, payment_method_id=card)

    assert response.status_code == 201, response.content
    assert response.json()["payment_session"]["status"] == "authorized"
    [create] = _intent_posts(fake_stripe)
    assert create["path"] == "/v1/payment_intents"
    assert create["params"]["confirm"] in ("true", True)
    assert create["params"]["payment_method"] == card
    session = PaymentSession.objects.get(cart_id=cart["id"])
    assert (session.status, session.confirm_attempts) == (PaymentSessionStatus.AUTHORIZED, 1)
    assert PaymentAttempt.objects.filter(cart_id=cart["id"], outcome="succeeded").count() == 1


def test_saved_card_needing_3ds_is_requires_action_after_one_call(shop, fake_stripe, ada_with_card):
    bearer, card = ada_with_card(THREE_D_SECURE)
    cart = shop.cart((VariantFactory(prices={"usd": 2000}), 1), token=bearer)
    fake_stripe.server.requests_clear()

    response = shop.pay(cart["id"], token=bearer, payment_method_id=card)

    assert response.status_code == 201, response.content
    assert response.json()["payment_session"]["status"] == "requires_action"
    assert len(_intent_posts(fake_stripe)) == 1
    assert PaymentAttempt.objects.filter(cart_id=cart["id"], outcome="requires_action").count() == 1


def test_declined_create_and_confirm_keeps_a_failed_session_and_counts_the_decline(shop, fake_stripe, ada_with_card):
    bearer, card = ada_with_card(DECLINED_AT_CONFIRM)
    cart = shop.cart((VariantFactory(prices={"usd": 2000}), 1), token=bearer)

    response = shop.pay(cart["id"], token=bearer, payment_method_id=card)

    assert response.status_code == 402, response.content
    assert response.json()["error"]["code"] == "card_declined"
    session = PaymentSession.objects.get(cart_id=cart["id"])
    assert session.status == PaymentSessionStatus.FAILED
    assert PaymentAttempt.objects.filter(cart_id=cart["id"], outcome="declined").count() == 1

    again = shop.pay(cart["id"], token=bearer, payment_method_id=card)  # the next try: a fresh intent

    assert again.status_code == 402, again.content
    first, second = PaymentSession.objects.filter(cart_id=cart["id"]).order_by("created_at")
    assert first.payment_intent_id != second.payment_intent_id
    assert (first.is_active, first.status) == (False, PaymentSessionStatus.CANCELED)
    assert PaymentAttempt.objects.filter(cart_id=cart["id"], outcome="declined").count() == 2


def test_unknown_outcome_of_create_and_confirm_is_retried_with_the_same_key(shop, fake_stripe, ada_with_card):
    bearer, card = ada_with_card()
    cart = shop.cart((VariantFactory(prices={"usd": 2000}), 1), token=bearer)
    fake_stripe.server.fault(path="/v1/payment_intents", status=500, when="after", count=10)

    unknown = shop.pay(cart["id"], token=bearer, payment_method_id=card)

    assert unknown.status_code in (502, 503), unknown.content
    assert not PaymentSession.objects.filter(cart_id=cart["id"]).exists()  # nothing settled as failed
    fake_stripe.server.faults_clear()

    retried = shop.pay(cart["id"], token=bearer, payment_method_id=card)

    assert retried.status_code == 201, retried.content
    assert retried.json()["payment_session"]["status"] == "authorized"
    posts = [r for r in _intent_posts(fake_stripe) if r["path"] == "/v1/payment_intents"]
    assert len({r["idempotency_key"] for r in posts}) == 1  # every try, the same key
    assert fake_stripe.server.executed(path="/v1/payment_intents") == 1  # Stripe acted once
