"""``devtools.demo_orders``: demo orders made by the services against the Stripe stand-in, then dated.

One generation (about 10 s) checked from every side: the ledger, the statuses, the stand-in's and
dj-stripe's PaymentIntents agree; the timeline moves timestamps and nothing else.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.db import connection, models
from django.utils import timezone

from devtools import demo_orders, timeline

pytestmark = pytest.mark.django_db

DAYS = 30
ORDERS = 14
SEED = 4  # a history with captures, refunds, cancels and authorizations still open (asserted below)


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the apps the timeline touches (and dj-stripe's), without its timestamps."""
    rows = {}
    for label in (*timeline.TIMELINE_APPS, "djstripe", "customers", "catalog"):
        for model in apps.get_app_config(label).get_models():
            names = [f.attname for f in model._meta.concrete_fields if not isinstance(f, models.DateTimeField)]
            rows[model._meta.label] = sorted(model._default_manager.values_list(*names), key=repr)
    return rows


@pytest.fixture
def generated(localstripe: Any, settings: Any) -> dict[str, Any]:
    settings.STRIPE_WEBHOOK_SECRET = "whsec_test_demo_orders"
    settings.STRIPE_CAPTURE_METHOD = "manual"
    summary = demo_orders.demo_orders_generate(
        stripe_base=localstripe.base_url, orders=ORDERS, days=DAYS, seed=SEED, customers=2, timeline=False
    )
    before = snapshot()
    dated = timeline.timeline_apply(summary.stories)
    return {"summary": summary, "before": before, "dated": dated}


def test_demo_orders_end_to_end(generated: dict[str, Any], localstripe: Any) -> None:
    """One generation (each is about 10 s of real checkouts), checked from both sides."""
    assert_ledger_statuses_and_stripe_agree(generated, localstripe)
    assert_spread_over_the_period_and_only_timestamps_moved(generated)


def assert_ledger_statuses_and_stripe_agree(generated: dict[str, Any], localstripe: Any) -> None:
    from djstripe.models import PaymentIntent as MirroredIntent

    from orders import selectors as orders
    from orders.models import Order
    from payments import selectors as payments
    from webhooks.models import WebhookEvent

    summary = generated["summary"]
    placed = list(Order.objects.order_by("display_id"))
    assert summary.orders == len(placed) == ORDERS
    stats = summary.stats
    assert stats["captured"] and stats["awaiting_capture"] and stats["canceled"], stats
    assert stats["partially_refunded"] + stats.get("refunded", 0), stats
    assert stats["declined"] and stats["abandoned"], stats

    amounts = orders.order_amounts(orders=placed)
    seen = set()
    for order in placed:
        totals = amounts[order.id]
        assert totals.authorized == order.total and totals.pending == 0, order.id
        if totals.refunded:
            expected = "refunded" if totals.refunded == totals.captured else "partially_refunded"
        elif totals.captured:
            expected = "captured" if totals.captured + totals.voided == order.total else "partially_captured"
        elif totals.voided:
            expected = "canceled"
        else:
            expected = "authorized"
        assert order.payment_status == expected, (order.id, totals)
        if expected == "canceled":
            assert order.status == "canceled", order.id
        if order.fulfillment_status in ("shipped", "delivered"):
            assert totals.captured, order.id
        seen.add(expected)
        # what the ledger says was captured and refunded, Stripe (the stand-in) holds, and dj-stripe mirrors
        intent = localstripe.request("GET", f"/v1/payment_intents/{order.payment_intent_id}")
        assert int(intent["amount_received"]) == totals.captured, order.id
        assert intent["status"] == ("canceled" if expected == "canceled" else intent["status"])
        mirrored = MirroredIntent.objects.get(id=order.payment_intent_id).stripe_data
        assert (mirrored["amount"], mirrored["status"]) == (order.total, intent["status"]), order.id
        assert int(mirrored.get("amount_received") or 0) == totals.captured, order.id
        session = payments.payment_session_get_by_intent(payment_intent_id=order.payment_intent_id)
        assert session is not None and session.amount == order.total, order.id
    assert {"authorized", "captured", "canceled"} <= seen
    assert not WebhookEvent.objects.filter(status="failed").exists()
    assert WebhookEvent.objects.filter(status="received").count() == summary.webhooks_waiting


def assert_spread_over_the_period_and_only_timestamps_moved(generated: dict[str, Any]) -> None:
    from orders.models import Order, OrderEvent
    from payments.models import LedgerEntry

    assert generated["dated"] > 0
    assert snapshot() == generated["before"]  # amounts, statuses, ids, Stripe's mirror: untouched

    now = timezone.now()
    placed = list(Order.objects.order_by("created_at"))
    assert placed[0].created_at >= now - timedelta(days=DAYS + 1)
    assert placed[-1].created_at - placed[0].created_at > timedelta(days=DAYS / 3)  # spread, not all today
    assert [o.display_id for o in placed] == sorted(o.display_id for o in placed)  # numbered in time order
    for order in placed:
        events = list(OrderEvent.objects.filter(order_id=order.id).order_by("created_at"))
        assert events[0].created_at >= order.created_at - timedelta(seconds=5), order.id
        assert events[-1].created_at <= now, order.id
        ledger_rows = LedgerEntry.objects.filter(payment_intent_id=order.payment_intent_id)
        assert all(order.created_at - timedelta(seconds=5) <= r.created_at <= now for r in ledger_rows), order.id
        if order.payment_status == "authorized":  # the capture queue holds recent orders only
            assert now - order.created_at < timedelta(days=demo_orders.AUTHORIZATION_DAYS), order.id
            assert order.capture_before - order.created_at > timedelta(days=6), order.id


WRITES = {"create", "bulk_create", "update", "bulk_update", "save", "delete", "get_or_create", "update_or_create"}


def test_demo_orders_writes_rows_only_through_the_services() -> None:
    """No model write in the tool itself: every row comes from a service (the timeline only re-dates)."""
    tree = ast.parse(Path(demo_orders.__file__).read_text())
    writes = [
        f"line {node.lineno}: {ast.unparse(node.func)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in WRITES
        and ast.unparse(node.func) != "os.environ.update"
    ]
    assert writes == []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_demo_orders_command_line_brings_its_own_stand_in() -> None:
    """``python -m devtools.demo_orders`` as a developer runs it: its own stand-in, settings from the
    environment, one summary line (against this test's database, emptied afterwards)."""
    from customers.models import User
    from orders.models import Order
    from payments import ledger

    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    url = f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")} | {"DATABASE_URL": url}
    command = [sys.executable, "-m", "devtools.demo_orders", "--orders", "3", "--seed", "2", "--customers", "1"]

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, check=False)  # noqa: S603

    assert done.returncode == 0, done.stderr[-2000:]
    assert "Demo history over 30 days: 3 orders" in done.stdout, done.stdout
    orders = list(Order.objects.all())
    assert len(orders) == 3
    for order in orders:
        assert ledger.ledger_totals(payment_intent_id=order.payment_intent_id).authorized == order.total
    joined = User.objects.get(email=f"customer1@{demo_orders.DEMO_DOMAIN}").date_joined
    assert joined < min(o.created_at for o in orders)  # the account is older than the history


def test_demo_orders_runs_again_after_its_stand_in_is_gone(localstripe: Any, settings: Any) -> None:
    """A second run (a new private stand-in) passes over demo customers whose Stripe Customer was the
    first stand-in's, instead of failing on a Customer it does not know."""
    from customers.models import User
    from orders.models import Order

    settings.STRIPE_WEBHOOK_SECRET = "whsec_test_demo_orders"
    settings.STRIPE_CAPTURE_METHOD = "manual"
    run = {"stripe_base": localstripe.base_url, "orders": 3, "seed": 1, "customers": 1, "declined": 0, "abandoned": 0}
    demo_orders.demo_orders_generate(**run)
    localstripe.flush()  # as if that stand-in had stopped: its Customers are gone

    demo_orders.demo_orders_generate(**run)

    assert Order.objects.count() == 6
    assert User.objects.filter(email__endswith=f"@{demo_orders.DEMO_DOMAIN}").count() == 2  # one passed over
