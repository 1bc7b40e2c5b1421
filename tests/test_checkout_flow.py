"""``python -m devtools.checkout_flow`` against a live server and a real localstripe (issue 7)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from typing import Any

import pytest
from django.conf import settings as django_settings

from devtools import checkout_flow
from tests.helpers import demo_shop_configure
from tests.plugins.localstripe import LocalStripe, localstripe, localstripe_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


@pytest.fixture
def shop_url(live_server: Any, localstripe: LocalStripe, settings: Any) -> str:  # noqa: F811
    """A live server configured like the demo (localstripe and its fake Stripe.js) with the demo catalog."""
    demo_shop_configure(settings, localstripe, publishable_key="pk_test_localstripe_flow")
    return live_server.url


def _flow(*args: str) -> str:
    out = io.StringIO()
    if checkout_flow.main(list(args), out=out) != 0:
        raise FlowFailed(out.getvalue())
    return out.getvalue()


class FlowFailed(Exception):
    """The flow exited non-zero; the message is its output."""


def _orders() -> list[Any]:
    from orders.models import Order

    return list(Order.objects.all())


@pytest.mark.parametrize(("region", "currency"), [("usd", "usd"), ("Japan", "jpy"), ("kwd", "kwd")])
def test_checkout_flow_places_an_order(shop_url, region, currency):
    output = _flow("--base-url", shop_url, "--region", region, "--quantity", "2")

    [order] = _orders()
    assert order.currency_code == currency
    assert order.payment_status == "authorized"
    for step in ("regions", "create cart", "tokenize card", "payment session", "complete", "get order"):
        assert f"+ {step}" in output
    assert f"OK order {order.id} #{order.display_id}" in output
    assert " ms" in output  # each step is timed


def test_checkout_flow_authenticates_three_d_secure(shop_url, localstripe):  # noqa: F811
    output = _flow("--base-url", shop_url, "--card", "4000 0027 6000 3184")

    assert "+ 3-D Secure" in output
    [order] = _orders()
    intent = localstripe.request("GET", f"/v1/payment_intents/{order.payment_intent_id}")
    assert intent["status"] == "requires_capture"
    assert int(intent["amount"]) == order.total


def test_checkout_flow_fails_on_a_declined_card(shop_url):
    with pytest.raises(FlowFailed, match="card_declined"):
        _flow("--base-url", shop_url, "--card", "4000000000000341")
    assert _orders() == []


def test_checkout_flow_exits_non_zero_when_the_server_is_unreachable():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "-m", "devtools.checkout_flow", "--base-url", "http://127.0.0.1:9", "--timeout", "5"],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "cannot connect" in result.stdout + result.stderr
