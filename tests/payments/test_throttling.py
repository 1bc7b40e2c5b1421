"""Payment-session creation is throttled per cart and per client IP (card-testing defence)."""

from __future__ import annotations

import pytest

from tests.factories import VariantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(settings):
    def set_rates(*, cart: str = "100/min", ip: str = "100/min") -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {
                **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                "payment_session_cart": cart,
                "payment_session_ip": ip,
            },
        }

    return set_rates


def _cart(client, region):
    return client.post("/store/carts", {"region_id": region.id}, format="json").json()["cart"]["id"]


def _post(client, cart_id, **extra):
    return client.post(f"/store/carts/{cart_id}/payment-sessions", {"provider_id": "stripe"}, format="json", **extra)


def test_throttle_per_cart_returns_429_with_retry_after(api_client, region_usd, rates):
    rates(cart="2/min")
    cart_id = api_client.post("/store/carts", {"region_id": region_usd.id}, format="json").json()["cart"]["id"]

    # Refused requests count too (an empty cart is a 400): the throttle runs before anything else.
    assert [_post(api_client, cart_id).status_code for _ in range(2)] == [400, 400]
    response = _post(api_client, cart_id, REMOTE_ADDR="10.9.9.9")  # another IP: same cart

    assert response.status_code == 429
    assert response.json() == {
        "error": {
            "type": "rate_limit_error",
            "code": "rate_limited",
            "message": "Too many requests. Please retry later.",
            "param": None,
        }
    }
    assert 1 <= int(response["Retry-After"]) <= 60

    other_cart = api_client.post("/store/carts", {"region_id": region_usd.id}, format="json").json()["cart"]["id"]
    assert _post(api_client, other_cart).status_code == 400  # not throttled


def test_throttle_per_ip_across_carts(api_client, region_usd, rates):
    rates(ip="3/min")
    carts = [_cart(api_client, region_usd) for _ in range(4)]

    statuses = [_post(api_client, cart_id).status_code for cart_id in carts]

    assert statuses == [400, 400, 400, 429]
    assert _post(api_client, carts[3], REMOTE_ADDR="10.1.2.3").status_code == 400  # another client


def test_throttle_does_not_apply_to_other_cart_endpoints(api_client, region_usd, rates):
    rates(cart="1/min", ip="1/min")
    variant = VariantFactory()
    cart_id = api_client.post("/store/carts", {"region_id": region_usd.id}, format="json").json()["cart"]["id"]
    for _ in range(3):
        body = {"variant_id": variant.id, "quantity": 1}
        response = api_client.post(f"/store/carts/{cart_id}/line-items", body, format="json")
        assert response.status_code == 200
        assert api_client.get(f"/store/carts/{cart_id}").status_code == 200
