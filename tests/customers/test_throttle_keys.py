"""The per-email login throttle's cache key (found by tests/test_schemathesis.py: a generated
email made a key over memcached's 250-character limit, with raw non-ASCII characters)."""

from __future__ import annotations

import warnings

import pytest
from django.core.cache.backends.base import CacheKeyWarning
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from customers.throttling import TokenEmailThrottle


def _key(email: object) -> str | None:
    request = APIRequestFactory().post("/store/auth/token", {"email": email}, format="json")
    return TokenEmailThrottle().get_cache_key(Request(request, parsers=[JSONParser()]), None)


def test_email_throttle_key_is_short_ascii_and_holds_no_email():
    email = "å\U000411f7é" * 100 + "@example.com"

    key = _key(email)

    assert key is not None
    assert len(key) <= 250 and key.isascii()
    assert "example.com" not in key and "@" not in key
    assert key == _key(f"  {email.upper()} ") == _key(email.lower())  # the same normalization as before
    assert _key("someone@example.com") != _key("someone-else@example.com")
    assert _key("   ") is None and _key(12) is None


@pytest.mark.django_db
def test_a_login_with_any_email_makes_no_cache_key_warning(api_client):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)
        response = api_client.post(
            "/store/auth/token", {"email": "ü" * 300 + "@example.com", "password": "wrong"}, format="json"
        )
    assert response.status_code in (400, 401)
