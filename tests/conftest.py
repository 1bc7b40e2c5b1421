from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.plugins.localstripe"]


def pytest_configure(config: pytest.Config) -> None:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise pytest.UsageError(
            "Tests run on PostgreSQL: set DATABASE_URL=postgres://postgres@127.0.0.1:5432/checkout "
            "(scripts/test.sh does this for you)."
        )


@pytest.fixture(autouse=True)
def _clear_cache():
    """Throttle counters and other cache state must not leak from one test into the next."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    """Hashing with the production hasher makes every user and token slow; tests need no strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def region_usd(db):
    from tests.factories import RegionFactory

    return RegionFactory(
        name="United States", currency_code="usd", countries=["US"], tax_rate_bps=875, tax_inclusive=False
    )


@pytest.fixture
def region_jpy(db):
    from tests.factories import RegionFactory

    return RegionFactory(name="Japan", currency_code="jpy", countries=["JP"], tax_rate_bps=1000, tax_inclusive=True)


@pytest.fixture
def region_kwd(db):
    from tests.factories import RegionFactory

    return RegionFactory(name="Kuwait", currency_code="kwd", countries=["KW"], tax_rate_bps=500, tax_inclusive=False)
