"""pytest plugin: one localstripe server per test session, emptied after every test.

Enable it with ``pytest_plugins = ["tests.plugins.localstripe"]`` in tests/conftest.py.

Fixtures:

* ``localstripe_server`` (session): starts localstripe on 127.0.0.1 (free port, data
  file and log in a session temp dir) and yields its base URL.
* ``localstripe`` (function): points the payments gateway at that server (Django
  settings via pytest-django's ``settings``; gateway client reset), yields a
  :class:`LocalStripe` helper, and afterwards empties localstripe's store
  (``DELETE /_config/data``) and disables the webhooks the test registered.

The settings a test gets under ``localstripe``:
``STRIPE_API_BASE`` = the server, ``STRIPE_API_KEY`` = ``STRIPE_TEST_SECRET_KEY`` =
``TEST_API_KEY`` (never a real key from the environment),
``STRIPE_AUTOMATIC_PAYMENT_METHODS = False`` and ``STRIPE_SEND_SETUP_FUTURE_USAGE = False``
(localstripe rejects ``automatic_payment_methods`` and ``setup_future_usage``),
``STRIPE_LIVE_MODE = False``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.localstripe_server import start_localstripe, stop
from tests.plugins.standin_http import HttpControl
from tests.plugins.standin_stripe import StripeControl

# localstripe accepts any ``sk_`` key; dj-stripe wants ``sk_test_`` + 24 or more letters/digits.
TEST_API_KEY = "sk_test_localstripe000000000000000000"


class LocalStripeError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"localstripe answered {status}: {body}")
        self.status = status
        self.body = body


class LocalStripe(HttpControl, StripeControl):
    """Test-side access to localstripe, for what the gateway must not do.

    Requests carry JSON bodies (localstripe reads JSON before form data), so
    values keep their types.
    """

    def __init__(self, base_url: str, api_key: str = TEST_API_KEY) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self._webhook_ids: set[str] = set()

    def request(self, method: str, path: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps(data).encode() if data is not None else None
        request = urllib.request.Request(self.base_url + path, data=body, method=method)  # noqa: S310 - local server
        request.add_header("Authorization", f"Bearer {self.api_key}")
        if body is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                content = response.read()
        except urllib.error.HTTPError as exc:
            raise LocalStripeError(exc.code, exc.read().decode(errors="replace")) from None
        return json.loads(content) if content.strip() else {}

    def card_payment_method(self, number: str, *, exp_month: int = 12, exp_year: int = 2034, cvc: str = "123") -> str:
        """Create a card PaymentMethod (what Stripe.js does in a browser); returns its id."""
        card = {"number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc}
        return self.request("POST", "/v1/payment_methods", {"type": "card", "card": card})["id"]

    def authenticate(self, payment_intent_id: str, client_secret: str, *, success: bool = True) -> dict[str, Any]:
        """Complete (or fail) the 3-D Secure step of a ``requires_action`` PaymentIntent."""
        return self.request(
            "POST",
            f"/v1/payment_intents/{payment_intent_id}/_authenticate",
            {"client_secret": client_secret, "success": success},
        )

    def register_webhook(self, webhook_id: str, *, url: str, secret: str, events: list[str] | None = None) -> None:
        """Have localstripe POST signed events to ``url`` (all types unless ``events``)."""
        data: dict[str, Any] = {"url": url, "secret": secret}
        if events is not None:
            data["events"] = events
        self.request("POST", f"/_config/webhooks/{webhook_id}", data)
        self._webhook_ids.add(webhook_id)

    def flush(self) -> None:
        """Delete every object in localstripe's store (webhook registrations survive)."""
        self.request("DELETE", "/_config/data")

    def clock_advance(self, seconds: float) -> float:
        """Move the stand-in's test clock forward; returns its new time (unix seconds)."""
        return float(self.request("POST", "/_control/clock", {"advance": seconds})["now"])

    def reset(self) -> None:
        self._reset_http()
        self._reset_stripe()
        self.request("DELETE", "/_control/clock")
        # localstripe cannot delete a webhook: re-register it for no event type.
        for webhook_id in self._webhook_ids:
            self.request(
                "POST", f"/_config/webhooks/{webhook_id}", {"url": "http://127.0.0.1:9/", "secret": "off", "events": []}
            )
        self._webhook_ids.clear()
        self.flush()


@pytest.fixture(scope="session")
def localstripe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_file = tmp_path_factory.mktemp("localstripe") / "localstripe.pickle"
    process, base_url = start_localstripe(data_file=data_file)
    try:
        yield base_url
    finally:
        stop(process)


@pytest.fixture
def localstripe(localstripe_server: str, settings: Any) -> Iterator[LocalStripe]:
    from payments import gateway

    settings.STRIPE_API_BASE = localstripe_server
    settings.STRIPE_API_KEY = TEST_API_KEY
    settings.STRIPE_TEST_SECRET_KEY = TEST_API_KEY
    settings.STRIPE_LIVE_MODE = False
    settings.STRIPE_AUTOMATIC_PAYMENT_METHODS = False
    settings.STRIPE_SEND_SETUP_FUTURE_USAGE = False
    gateway.reset_client()
    server = LocalStripe(localstripe_server)
    try:
        yield server
    finally:
        server.reset()
        gateway.reset_client()
