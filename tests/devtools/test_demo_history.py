"""``devtools.demo_history``: the demo's shoppers and past orders are real ones, dated onto a timeline.

Run in-process against a live server and the Stripe stand-in, as ``devtools.demo`` runs it.
"""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from devtools import demo_history
from tests.helpers import demo_shop_configure
from tests.plugins.localstripe import LocalStripe, localstripe, localstripe_server  # noqa: F401 - fixtures

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PUBLISHABLE_KEY = "pk_test_localstripe_history"
DAYS = 14


@pytest.fixture
def history(live_server: Any, localstripe: LocalStripe, settings: Any, capsys) -> dict[str, Any]:  # noqa: F811
    demo_shop_configure(settings, localstripe, publishable_key=PUBLISHABLE_KEY)
    call_command(
        "ensure_staff_user", "--email", "staff@example.com", "--password", "staff-password-1", stdout=io.StringIO()
    )
    args = [
        "--base-url",
        live_server.url,
        "--stripe-base",
        localstripe.base_url,
        "--publishable-key",
        PUBLISHABLE_KEY,
        "--secret-key",
        localstripe.api_key,
        "--password",
        "shopper-password-1",
        "--orders",
        "10",
        "--abandoned",
        "2",
        "--days",
        str(DAYS),
        "--seed",
        "5",
    ]
    started = timezone.now()
    assert demo_history.main(args) == 0
    return {"args": args, "started": started, "output": capsys.readouterr().out, "url": live_server.url}


def test_demo_history_places_real_orders_and_staff_acts_on_them(history, localstripe):  # noqa: F811
    from orders.models import Order
    from payments import ledger

    orders = list(Order.objects.all())
    assert len(orders) == 10
    totals = {
        o.id: t
        for o, t in zip(
            orders, [ledger.ledger_totals(payment_intent_id=o.payment_intent_id) for o in orders], strict=False
        )
    }
    captured = [o for o in orders if totals[o.id].captured]
    assert captured, "some orders were captured by staff"
    for order in captured:  # what the ledger says was captured, Stripe holds
        intent = localstripe.request("GET", f"/v1/payment_intents/{order.payment_intent_id}")
        assert int(intent["amount_received"]) == totals[order.id].captured
    assert {o.fulfillment_status for o in orders} >= {"delivered", "not_fulfilled"}
    assert any(o.status == "completed" for o in orders)
    assert f"{len(orders)} orders" in history["output"]


def test_demo_history_dates_each_order_onto_the_timeline(history):
    from carts.models import Cart
    from customers.models import User
    from orders.models import Order, OrderEvent
    from payments.models import LedgerEntry

    now = timezone.now()
    orders = list(Order.objects.order_by("created_at"))
    assert orders[0].created_at >= history["started"] - timedelta(days=DAYS)
    assert orders[-1].created_at <= now
    assert orders[-1].created_at - orders[0].created_at > timedelta(days=DAYS / 2)  # spread, not all today
    for order in orders:
        events = list(OrderEvent.objects.filter(order_id=order.id).order_by("created_at"))
        assert events and events[0].created_at >= order.created_at - timedelta(seconds=5), order.id
        assert events[-1].created_at <= now
        ledger_rows = LedgerEntry.objects.filter(payment_intent_id=order.payment_intent_id)
        assert all(row.created_at >= order.created_at - timedelta(seconds=5) for row in ledger_rows), order.id
        assert Cart.objects.get(pk=order.cart_id).created_at <= order.created_at
        age = now - order.created_at
        if age < timedelta(days=2):
            assert order.payment_status == "authorized", order.id  # the capture queue has recent orders
        if order.fulfillment_status == "delivered":
            [delivered] = [e for e in events if e.payload.get("to") == "delivered"]
            assert delivered.created_at - order.created_at > timedelta(days=2)  # delivered days later, not at once
    joined = User.objects.filter(email__in=[s[0] for s in demo_history.SHOPPERS]).values_list("date_joined", flat=True)
    assert len(joined) == len(demo_history.SHOPPERS)
    assert max(joined) < orders[0].created_at


def test_demo_history_saves_cards_and_counts_declines(history, api_client):
    from payments.models import PaymentAttempt

    declined = PaymentAttempt.objects.filter(outcome="declined").count()
    assert f"({declined} first declined" in history["output"]
    saved = 0
    for email, *_ in demo_history.SHOPPERS:
        answer = api_client.post("/store/auth/token", {"email": email, "password": "shopper-password-1"}, format="json")
        cards = api_client.get(
            "/store/customers/me/payment-methods", HTTP_AUTHORIZATION=f"Bearer {answer.json()['token']}"
        )
        saved += len(cards.json()["payment_methods"])
    assert saved > 0  # a signed-in shopper's first order saves the card (confirmed as Stripe.js would)
    assert f"{saved} saved cards)" in history["output"]


def test_demo_history_runs_once(history, capsys):
    from orders.models import Order

    before = Order.objects.count()
    assert demo_history.main(history["args"]) == 0
    assert Order.objects.count() == before
    assert "there already" in capsys.readouterr().out


@pytest.mark.browser
def test_screenshots_of_the_back_office_with_the_demo_history(history, monkeypatch, django_user_model):
    """artifacts/screenshots/demo-history/: the dashboard and orders as a first-run demo shows them."""
    from pathlib import Path

    from django.conf import settings

    from devtools.chromium import CHROMIUM
    from devtools.screenshots import capture, pages_to_shoot

    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed: apt-get install -y chromium")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop runs in this thread
    django_user_model.objects.create_superuser("history-shots@example.com", "correct-horse-battery")
    shots = [shot for shot in pages_to_shoot() if shot.name in {"dashboard", "orders", "order", "order-authorized"}]

    files = capture(
        base_url=history["url"],
        email="history-shots@example.com",
        password="correct-horse-battery",
        shots=shots,
        out_dir=Path(settings.BASE_DIR) / "artifacts" / "screenshots" / "demo-history",
    )

    assert {path.stem for path in files} == {"dashboard", "orders", "order", "order-authorized"}
    assert all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in files)
