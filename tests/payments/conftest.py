"""Fixtures for the payment-session, saved-card, reservation, throttling and gateway tests.

``fake_stripe`` = the ``localstripe`` fixture (a real localstripe process, emptied after each
test) plus the settings localstripe needs (no ``setup_future_usage``), and helpers that
play the browser's part (Stripe.js) against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.helpers import ADDRESS_US, VISA, bearer, confirm_card, create_cart
from tests.plugins.localstripe import LocalStripe


class Browser:
    """What Stripe.js does in the shopper's browser, done against localstripe."""

    def __init__(self, server: LocalStripe) -> None:
        self.server = server

    def confirm_card(self, payment_intent_id: str, number: str = VISA) -> dict[str, Any]:
        return confirm_card(self.server, payment_intent_id, number)

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
        headers = bearer(token)
        cart_id = create_cart(self.client, self.region.id, [(v.id, q) for v, q in items], token=token, email=email)[
            "id"
        ]
        response = self.client.post(
            f"/store/carts/{cart_id}", {"shipping_address": ADDRESS_US}, format="json", **headers
        )
        assert response.status_code == 200, response.content
        response = self.client.post(
            f"/store/carts/{cart_id}/shipping-methods", {"option_id": self.option.id}, format="json", **headers
        )
        assert response.status_code == 200, response.content
        return response.json()["cart"]

    def pay(self, cart_id: str, *, token: str | None = None, **body: Any) -> Any:
        return self.client.post(
            f"/store/carts/{cart_id}/payment-sessions",
            {"provider_id": "stripe", **body},
            format="json",
            **bearer(token),
        )


@pytest.fixture
def shop(api_client: Any, region_usd: Any) -> Shop:
    from tests.factories import ShippingOptionFactory

    return Shop(client=api_client, region=region_usd, option=ShippingOptionFactory(region=region_usd, amount=500))


@pytest.fixture
def sent_requests(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every HTTP request the Stripe client sends (passed through to localstripe unchanged)."""
    sent: list[dict[str, Any]] = []
    original = requests.Session.request

    def recording_request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def]
        sent.append({"method": method.upper(), "url": url, "headers": dict(kwargs.get("headers") or {})})
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", recording_request)
    return sent
