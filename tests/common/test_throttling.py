"""Throttles: cart creation per client IP, and the per-process fallback when the cache is unreachable.

"Unreachable" here is a real Redis URL on a port where nothing listens (connection refused,
exactly what a restarting Redis answers); tests/common/test_outages.py kills a real redis-server.
"""

from __future__ import annotations

import logging
import socket

import pytest
from prometheus_client import REGISTRY

from common import throttling
from customers.throttling import TokenEmailThrottle
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

RATE_LIMITED = {
    "error": {
        "type": "rate_limit_error",
        "code": "rate_limited",
        "message": "Too many requests. Please retry later.",
        "param": None,
    }
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cache_errors(scope: str) -> float:
    return REGISTRY.get_sample_value("checkout_throttle_cache_errors_total", {"scope": scope}) or 0.0


@pytest.fixture
def rates(settings):
    def set_rates(**scopes: str) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **scopes},
        }

    return set_rates


@pytest.fixture
def redis_down(settings):
    """The default cache is django-redis at a port nothing listens on."""
    settings.CACHES = {
        "default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}
    }
    throttling.local_fallback_clear()
    yield
    throttling.local_fallback_clear()


def create_cart(client, region, **extra):
    return client.post("/store/carts", {"region_id": region.id}, format="json", **extra)


def test_cart_create_throttled_per_client_ip(api_client, region_usd, rates):
    rates(cart_create="2/min")

    statuses = [create_cart(api_client, region_usd).status_code for _ in range(3)]
    refused = create_cart(api_client, region_usd)

    assert statuses == [201, 201, 429]
    assert refused.status_code == 429
    assert refused.json() == RATE_LIMITED
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert create_cart(api_client, region_usd, REMOTE_ADDR="10.7.7.7").status_code == 201  # another client


def test_cart_create_rate_comes_from_settings(settings):
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["cart_create"] == "30/min"


def test_cart_create_throttle_leaves_other_cart_writes_alone(api_client, region_usd, rates):
    rates(cart_create="1/min")
    cart_id = create_cart(api_client, region_usd).json()["cart"]["id"]

    for _ in range(3):
        assert api_client.post(f"/store/carts/{cart_id}", {"email": "a@example.com"}, format="json").status_code == 200


def test_throttle_without_cache_counts_per_process_instead_of_500(api_client, region_usd, rates, redis_down, caplog):
    rates(cart_create="3/min")
    before = cache_errors("cart_create")

    with caplog.at_level(logging.WARNING, logger="common.throttling"):
        statuses = [create_cart(api_client, region_usd).status_code for _ in range(4)]

    assert statuses == [201, 201, 201, 429]  # the limit still holds, counted in this process
    assert cache_errors("cart_create") - before == 4
    lines = [r for r in caplog.records if "throttle.cache_unavailable" in r.getMessage()]
    assert len(lines) == 1  # once per interval, not once per request
    assert "scope=cart_create" in lines[0].getMessage()


def test_throttle_error_log_repeats_after_its_interval(api_client, region_usd, rates, redis_down, caplog, monkeypatch):
    rates(cart_create="100/min")
    monkeypatch.setattr(throttling.cache_error_log, "interval", 0.0)

    with caplog.at_level(logging.WARNING, logger="common.throttling"):
        for _ in range(3):
            assert create_cart(api_client, region_usd).status_code == 201

    assert len([r for r in caplog.records if "throttle.cache_unavailable" in r.getMessage()]) == 3


def test_payment_session_throttles_without_cache_answer_the_view_not_500(api_client, region_usd, rates, redis_down):
    rates(cart_create="100/min", payment_session_cart="2/min", payment_session_ip="100/min")
    before = cache_errors("payment_session_cart")
    cart_id = create_cart(api_client, region_usd).json()["cart"]["id"]

    statuses = [
        api_client.post(
            f"/store/carts/{cart_id}/payment-sessions", {"provider_id": "stripe"}, format="json"
        ).status_code
        for _ in range(3)
    ]

    assert statuses == [400, 400, 429]  # an empty cart is a 400: the view ran
    assert cache_errors("payment_session_cart") - before == 3


def test_login_email_throttle_without_cache_still_caps_guessing(api_client, rates, redis_down):
    rates(auth="100/min", auth_email="2/min")
    user = UserFactory()
    before = cache_errors(TokenEmailThrottle.scope)

    statuses = [
        api_client.post(
            "/store/auth/token", {"email": user.email, "password": "wrong-password"}, format="json"
        ).status_code
        for _ in range(3)
    ]

    assert statuses == [401, 401, 429]
    assert cache_errors(TokenEmailThrottle.scope) - before >= 3


@pytest.fixture
def num_proxies(settings):
    def set_num_proxies(value: int) -> None:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": value}

    throttling.proxy_unconfigured_log.done = False
    yield set_num_proxies
    throttling.proxy_unconfigured_log.done = False


def test_behind_an_unconfigured_proxy_shoppers_share_one_limit_and_it_is_logged_once(
    api_client, region_usd, rates, num_proxies, caplog
):
    rates(cart_create="2/min")
    num_proxies(0)
    balancer = {"REMOTE_ADDR": "10.0.0.2"}

    with caplog.at_level(logging.WARNING, logger="common.throttling"):
        statuses = [
            create_cart(api_client, region_usd, HTTP_X_FORWARDED_FOR=shopper, **balancer).status_code
            for shopper in ("198.51.100.1", "198.51.100.2", "198.51.100.3")
        ]

    assert statuses == [201, 201, 429]  # three shoppers, one limit: the balancer's address
    warnings = [r.getMessage() for r in caplog.records if "throttle.proxy_unconfigured" in r.getMessage()]
    assert len(warnings) == 1
    assert "DJANGO_NUM_PROXIES" in warnings[0] and "10.0.0.2" in warnings[0]


def test_with_num_proxies_set_each_shopper_behind_the_proxy_has_their_own_limit(
    api_client, region_usd, rates, num_proxies, caplog
):
    rates(cart_create="2/min")
    num_proxies(1)
    balancer = {"REMOTE_ADDR": "10.0.0.2"}

    def create(shopper: str) -> int:
        return create_cart(api_client, region_usd, HTTP_X_FORWARDED_FOR=shopper, **balancer).status_code

    with caplog.at_level(logging.WARNING, logger="common.throttling"):
        first = [create("198.51.100.1") for _ in range(3)]
        second = [create("198.51.100.2") for _ in range(2)]

    assert first == [201, 201, 429]
    assert second == [201, 201]
    assert not [r for r in caplog.records if "throttle.proxy_unconfigured" in r.getMessage()]
