from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _clear_throttle_cache() -> None:
    """Throttle counters live in the cache; start every test with none (auth is 20/min)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
