"""Helpers shared by the tests of several apps: addresses, Stripe's test cards, API call shapes.

Model factories are in ``tests/factories``; helpers of one app stay with its tests
(``tests/carts/helpers.py``, the ``conftest.py`` files).
"""

from __future__ import annotations

from typing import Any

# Shipping addresses by country, one per test region (US: usd, JP: jpy, KW: kwd).
ADDRESSES: dict[str, dict[str, str]] = {
    "US": {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "address_1": "1 Loom Street",
        "city": "Springfield",
        "postal_code": "12345",
        "country_code": "US",
    },
    "JP": {
        "first_name": "Hana",
        "last_name": "Sato",
        "address_1": "1-1 Chiyoda",
        "city": "Tokyo",
        "postal_code": "100-0001",
        "country_code": "JP",
    },
    "KW": {
        "first_name": "Noor",
        "last_name": "Al-Sabah",
        "address_1": "Block 1, Street 2",
        "city": "Kuwait City",
        "postal_code": "13001",
        "country_code": "KW",
    },
}
ADDRESS_US = ADDRESSES["US"]

# Stripe's test cards; localstripe answers them the same way.
VISA = "4242424242424242"
DECLINED_AT_CONFIRM = "4000000000000341"
THREE_D_SECURE = "4000002760003184"
DECLINED_AT_ATTACH = "4000000000000002"

PASSWORD = "correct-horse-battery"  # every UserFactory user's


def bearer(token: str | None) -> dict[str, str]:
    """Test-client keyword arguments that authenticate as the customer of ``token`` (none: a guest)."""
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}


def token_for(user: Any) -> str:
    """A fresh API token for a ``UserFactory`` user."""
    from customers import services as customer_services

    return customer_services.token_issue(email=user.email, password=PASSWORD)


def auth_limit(scope: str = "auth") -> int:
    """Requests allowed per window by a throttle scope (e.g. "300/min" -> 300)."""
    from django.conf import settings

    return int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope].split("/")[0])


def create_cart(
    client: Any, region_id: str, items: list[tuple[str, int]] | None = None, *, token: str | None = None, **extra: Any
) -> dict[str, Any]:
    """``POST /store/carts`` with ``items`` as (variant id, quantity) and ``extra`` body fields; the new cart."""
    body: dict[str, Any] = {"region_id": region_id, **extra}
    if items:
        body["items"] = [{"variant_id": v, "quantity": q} for v, q in items]
    response = client.post("/store/carts", body, format="json", **bearer(token))
    assert response.status_code == 201, response.content
    return response.json()["cart"]


def assert_error(response: Any, status: int, code: str, param: str | None = ...) -> dict[str, Any]:  # type: ignore[assignment]
    """The response is an API error of this status and code (and ``param``, when given); returns it."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) >= {"type", "code", "message", "param"}, body
    assert body["error"]["code"] == code, body
    if param is not ...:
        assert body["error"]["param"] == param, body
    return body["error"]


def demo_shop_configure(settings: Any, localstripe: Any, *, publishable_key: str) -> None:
    """Set up the live server like the demo: localstripe and its fake Stripe.js, the demo catalog.

    ``settings`` is pytest-django's fixture; the live server thread reads the same settings.
    """
    import io

    from django.core.management import call_command

    settings.STRIPE_JS_URL = f"{localstripe.base_url}/js.stripe.com/v3/"
    settings.STRIPE_PUBLISHABLE_KEY = publishable_key
    settings.STRIPE_SEND_SETUP_FUTURE_USAGE = False
    settings.STRIPE_CAPTURE_METHOD = "manual"
    call_command("load_demo_catalog", stdout=io.StringIO())


def confirm_card(server: Any, payment_intent_id: str, number: str = VISA) -> dict[str, Any]:
    """What Stripe.js does in the browser, against localstripe: set a card on the intent, confirm it.

    localstripe's confirm does not take a ``payment_method`` (500), hence the two steps
    (docs/localstripe.md).
    """
    method = server.card_payment_method(number)
    server.request("POST", f"/v1/payment_intents/{payment_intent_id}", {"payment_method": method})
    return server.request("POST", f"/v1/payment_intents/{payment_intent_id}/confirm", {})
