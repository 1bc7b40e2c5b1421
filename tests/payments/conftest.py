"""Fixtures for the payment-session, saved-card, reservation and throttling tests.

``fake_stripe`` = the ``localstripe`` fixture (a real localstripe process, emptied after each
test) plus the settings localstripe needs (no ``setup_future_usage``), and helpers that
play the browser's part (Stripe.js) against it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.cache import cache

from tests.plugins.localstripe import LocalStripe

VISA = "4242424242424242"
DECLINED_AT_CONFIRM = "4000000000000341"
THREE_D_SECURE = "4000002760003184"

ADDRESS = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "address_1": "1 Loom Street",
    "city": "Springfield",
    "postal_code": "12345",
    "country_code": "US",
}


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    """Throttle counters live in the cache: every test starts with none."""
    cache.clear()
    yield
    cache.clear()


class Browser:
    """What Stripe.js does in the shopper's browser, done against localstripe.

    localstripe's confirm does not take a ``payment_method`` (500): the card is set on the
    intent first, then the intent is confirmed (docs/localstripe.md).
    """

    def __init__(self, server: LocalStripe) -> None:
        self.server = server

    def confirm_card(self, payment_intent_id: str, number: str = VISA) -> dict[str, Any]:
        method = self.server.card_payment_method(number)
        self.server.request("POST", f"/v1/payment_intents/{payment_intent_id}", {"payment_method": method})
        return self.server.request("POST", f"/v1/payment_intents/{payment_intent_id}/confirm", {})

    def saved_card(self, stripe_customer_id: str, number: str = VISA) -> str:
        """A card saved on the customer outside checkout (as a SetupIntent would)."""
        method = self.server.card_payment_method(number)
        self.server.request("POST", f"/v1/payment_methods/{method}/attach", {"customer": stripe_customer_id})
        return method

    def intent(self, payment_intent_id: str) -> dict[str, Any]:
        return self.server.request("GET", f"/v1/payment_intents/{payment_intent_id}")


@dataclass
class Stripe:
    server: LocalStripe
    browser: Browser


@pytest.fixture
def fake_stripe(localstripe: LocalStripe, settings: Any) -> Stripe:
    settings.STRIPE_SEND_SETUP_FUTURE_USAGE = False  # localstripe rejects setup_future_usage
    settings.STRIPE_CAPTURE_METHOD = "manual"
    return Stripe(server=localstripe, browser=Browser(localstripe))


@dataclass
class Shop:
    """Builds carts through the store API, ready to pay."""

    client: Any
    region: Any
    option: Any

    def cart(self, *items: tuple[Any, int], email: str = "ada@example.com", token: str | None = None) -> dict[str, Any]:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        lines = [{"variant_id": v.id, "quantity": q} for v, q in items]
        body = {"region_id": self.region.id, "email": email, "items": lines}
        response = self.client.post("/store/carts", body, format="json", **headers)
        assert response.status_code == 201, response.content
        cart_id = response.json()["cart"]["id"]
        response = self.client.post(f"/store/carts/{cart_id}", {"shipping_address": ADDRESS}, format="json", **headers)
        assert response.status_code == 200, response.content
        response = self.client.post(
            f"/store/carts/{cart_id}/shipping-methods", {"option_id": self.option.id}, format="json", **headers
        )
        assert response.status_code == 200, response.content
        return response.json()["cart"]

    def pay(self, cart_id: str, *, token: str | None = None, **body: Any) -> Any:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        return self.client.post(
            f"/store/carts/{cart_id}/payment-sessions", {"provider_id": "stripe", **body}, format="json", **headers
        )


@pytest.fixture
def shop(api_client: Any, region_usd: Any) -> Shop:
    from tests.factories import ShippingOptionFactory

    return Shop(client=api_client, region=region_usd, option=ShippingOptionFactory(region=region_usd, amount=500))


def token_for(user: Any) -> str:
    from customers import services as customer_services

    return customer_services.token_issue(email=user.email, password="correct-horse-battery")
