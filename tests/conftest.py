from __future__ import annotations

import logging
import os
import sys

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
def _log_handlers_stay_writable():
    """A test that reconfigures logging while pytest captures its output (``dictConfig`` under
    ``capsys``) leaves the root handler on the capture's stream, closed when the test ends: every
    later log line of the run, from any test or a live server's thread, then prints
    ``--- Logging error --- ValueError: I/O operation on closed file`` instead of the line."""
    yield
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    closed = {
        handler
        for logger in loggers
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "closed", False)
    }
    for handler in closed:  # repaired, so that only the test that left them fails, not every later one
        handler.stream = sys.__stderr__  # not setStream: it flushes the closed stream first
    assert not closed, f"this test left log handlers on a closed stream: {closed}"


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
