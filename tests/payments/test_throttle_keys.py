"""The per-cart payment-session throttle's cache key (found by tests/test_schemathesis.py: a
generated cart id in the URL made keys with control and non-ASCII characters)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
from django.core.cache.backends.base import CacheKeyWarning
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from payments.throttling import PaymentSessionCartThrottle


def _key(cart_id: str) -> str | None:
    request = Request(APIRequestFactory().post(f"/store/carts/{cart_id}/payment-sessions", {}, format="json"))
    return PaymentSessionCartThrottle().get_cache_key(request, SimpleNamespace(kwargs={"pk": cart_id}))


def test_cart_throttle_key_is_short_ascii_whatever_the_url_holds():
    odd = "\x15P\x94®è\x93ñ\x03Î \x1e\x12" * 40

    key = _key(odd)

    assert key is not None
    assert len(key) <= 250 and key.isascii() and key.isprintable() and " " not in key
    assert _key("cart_01abc") == _key("cart_01abc") != _key("cart_01abd")
    assert _key(odd) != _key(odd[:-1])  # no truncation: two ids never share a window
    assert _key("") is None


@pytest.mark.django_db
def test_a_payment_session_for_any_cart_id_makes_no_cache_key_warning(api_client):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)
        response = api_client.post("/store/carts/ü×\x7fé/payment-sessions", {"provider_id": "stripe"}, format="json")
    assert response.status_code == 404
