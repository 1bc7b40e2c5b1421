"""Statement and Stripe-call budgets of ``POST /store/carts/{id}/payment-sessions`` (issue 13).

Each budget is the same for 1 and 50 lines. The Stripe calls are counted as the HTTP requests
stripe-python sends to the stand-in (``sent_requests``), not by mocking the gateway.
"""

from __future__ import annotations

from typing import Any

import pytest

from payments.models import StripeCustomer
from tests.factories import UserFactory, VariantFactory
from tests.helpers import VISA, token_for
from tests.payments.test_card_token import card_token

pytestmark = pytest.mark.django_db

# Statements of one call, transaction control (savepoints) included.
GUEST_CARD_QUERIES = 10
SAVING_CARD_QUERIES = 12
RETRY_QUERIES = 7
GUEST_NO_CARD_QUERIES = 9


def stripe_calls(sent: list[dict[str, Any]]) -> list[str]:
    """``METHOD /v1/path`` of each Stripe API request, ids replaced by their prefix."""
    calls = []
    for request in sent:
        path = request["url"].split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        if not path.startswith("v1/"):
            continue
        parts = [
            p.split("_", 1)[0] + "_" if "_" in p and p[:3] in ("pi_", "cus", "car", "pm_") else p
            for p in path.split("/")
        ]
        calls.append(f"{request['method']} /{'/'.join(parts)}")
    return calls


def _cart(shop: Any, lines: int, token: str | None = None) -> dict[str, Any]:
    return shop.cart(*((VariantFactory(), 1) for _ in range(lines)), token=token)


@pytest.mark.parametrize("lines", [1, 50])
def test_guest_card_token_session_budget(shop, fake_stripe, sent_requests, django_assert_num_queries, lines):
    cart = _cart(shop, lines)
    token = card_token(fake_stripe, VISA)
    sent_requests.clear()

    with django_assert_num_queries(GUEST_CARD_QUERIES):
        response = shop.pay(cart["id"], card_token=token)

    assert response.status_code == 201, response.content
    assert response.json()["payment_session"]["status"] == "authorized"
    assert stripe_calls(sent_requests) == [
        "POST /v1/customers",
        "POST /v1/customers/cus_/sources",
        "POST /v1/payment_intents",  # created and confirmed in one call
    ]


@pytest.mark.parametrize("lines", [1, 50])
def test_guest_without_card_session_budget(shop, fake_stripe, sent_requests, django_assert_num_queries, lines):
    """The Stripe.js path: the browser confirms; the server creates the intent only."""
    cart = _cart(shop, lines)
    sent_requests.clear()

    with django_assert_num_queries(GUEST_NO_CARD_QUERIES):
        response = shop.pay(cart["id"])

    assert response.status_code == 201, response.content
    assert stripe_calls(sent_requests) == ["POST /v1/payment_intents"]


@pytest.mark.parametrize("lines", [1, 50])
def test_signed_in_saving_a_card_session_budget(shop, fake_stripe, sent_requests, django_assert_num_queries, lines):
    """A returning customer (Stripe Customer known) pays with a new card and saves it."""
    user = UserFactory()
    bearer = token_for(user)
    customer = fake_stripe.server.request("POST", "/v1/customers", {"email": user.email})
    StripeCustomer.objects.create(user_id=user.pk, stripe_customer_id=customer["id"])
    cart = _cart(shop, lines, token=bearer)
    token = card_token(fake_stripe, VISA)
    sent_requests.clear()

    with django_assert_num_queries(SAVING_CARD_QUERIES):
        response = shop.pay(cart["id"], card_token=token, save_payment_method=True, token=bearer)

    assert response.status_code == 201, response.content
    assert response.json()["payment_session"]["status"] == "authorized"
    assert stripe_calls(sent_requests) == [
        "POST /v1/customers/cus_/sources",
        "POST /v1/payment_intents",  # created and confirmed in one call
    ]


@pytest.mark.parametrize("lines", [1, 50])
def test_retry_of_an_existing_session_budget(shop, fake_stripe, sent_requests, django_assert_num_queries, lines):
    """The same cart asked again, unchanged: the intent is read, nothing is written at Stripe."""
    cart = _cart(shop, lines)
    assert shop.pay(cart["id"]).status_code == 201
    sent_requests.clear()

    with django_assert_num_queries(RETRY_QUERIES):
        response = shop.pay(cart["id"])

    assert response.status_code == 200, response.content
    assert stripe_calls(sent_requests) == ["GET /v1/payment_intents/pi_"]
