"""Model-based lifecycle test of the money after the sale (issue 10, scope 3).

A seeded random walk (``tests/orders/lifecycle_model.py``): one order at a time, 10-30 random
steps on it (staff capture / refund / cancel with faults on their Stripe call, dashboard
actions, refund failures, disputes, expiry, webhook deliveries in any order with duplicates and
drops, reconciliation, resumes), then the next order, until ``LIFECYCLE_STEPS`` (default 2000)
steps are spent. After every step: no duplicate at Stripe, bounds, ledger within Stripe,
payment_status = the ledger's summary, stock. After each order's final reconciliation: the
ledger equals Stripe.

    LIFECYCLE_SEED=<n>      replay one walk (default: a new random seed, printed; CI: CI_SEED)
    LIFECYCLE_STEPS=20000   a longer walk
    LIFECYCLE_REPORT=path   append the counts table to this file
    LIFECYCLE_WEIGHTS=a=0,b=9  reweight step kinds (names: tests/orders/lifecycle_model.py STEP_WEIGHTS)
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import pytest
from django.test import Client

from tests.orders.conftest import shop_for
from tests.orders.lifecycle_model import Walk
from tests.webhooks.conftest import WEBHOOK_SECRET

pytestmark = pytest.mark.django_db


# CI walks one known seed (it passed 20,000 steps), so a landing never hangs on a walk nobody has
# seen; every local run without LIFECYCLE_SEED explores a new one.
CI_SEED = 808603476


def _seed() -> int:
    raw = os.environ.get("LIFECYCLE_SEED", "").strip()
    if raw:
        return int(raw)
    if os.environ.get("CI"):
        return CI_SEED
    return random.SystemRandom().randrange(1, 2**31)


def _weights() -> dict[str, int]:
    """``LIFECYCLE_WEIGHTS="dashboard_capture=0,deliver=20"`` reweights steps (e.g. to steer past a known bug)."""
    raw = os.environ.get("LIFECYCLE_WEIGHTS", "").strip()
    pairs = [item.split("=", 1) for item in raw.split(",") if item.strip()]
    return {name.strip(): int(value) for name, value in pairs}


def _report(walk: Walk, seed: int, steps: int, elapsed: float, outcome: str) -> None:
    width = max((len(name) for name in walk.counts), default=10)
    lines = [
        f"lifecycle walk LIFECYCLE_SEED={seed} LIFECYCLE_STEPS={steps}: {outcome}, "
        f"{walk.step_no} steps, {walk.counts['order_placed']} orders, {elapsed:.1f}s",
        *(f"  {name:<{width}}  {count:>6}" for name, count in sorted(walk.counts.items())),
    ]
    text = "\n".join(lines)
    print(text)
    path = os.environ.get("LIFECYCLE_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text + "\n\n")


def test_lifecycle_random_walk(localstripe: Any, settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    seed = _seed()
    budget = int(os.environ.get("LIFECYCLE_STEPS", "2000"))
    print(f"\nlifecycle walk: LIFECYCLE_SEED={seed} LIFECYCLE_STEPS={budget}")
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_WEBHOOK_SECRETS_EXTRA = []
    localstripe.webhooks_delivery(mode="hold")
    walk = Walk(
        seed=seed,
        localstripe=localstripe,
        settings=settings,
        client=Client(),
        capture_on_commit=django_capture_on_commit_callbacks,
        shop=shop_for("usd"),
        webhook_secret=WEBHOOK_SECRET,
        weights=_weights(),
    )
    start = time.monotonic()
    outcome = "passed"
    try:
        index = 0
        while walk.step_no < budget:
            index += 1
            walk.place(index)
            walk.walk_order(min(walk.rng.randint(10, 30), budget - walk.step_no))
    except AssertionError:
        outcome = "FAILED"
        raise
    except Exception:
        outcome = "ERROR"
        raise
    finally:
        walk.close()
        _report(walk, seed, budget, time.monotonic() - start, outcome)


# --- Divergences the walk found, reduced to deterministic reproductions ------------------------
# Each failed before its fix and pins it now.


@pytest.fixture
def placed_order(localstripe: Any, shop: Any) -> Any:
    from orders import services
    from tests.orders.conftest import make_cart, pay_cart

    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(stock=10), 1)]))
    order, created = services.order_place(
        cart_id=paid.cart_id, payment_intent_id=paid.payment_intent_id, actor="customer"
    )
    assert created
    return order


@pytest.mark.parametrize("staff_amount", [None, 1000], ids=["staff_full", "staff_partial"])
def test_repro_pending_staff_capture_then_dashboard_capture_of_another_amount(
    localstripe: Any, settings: Any, placed_order: Any, staff_amount: int | None
) -> None:
    """Walk seeds 1, 2, 3: our capture never reached Stripe (503 before executing: pending); someone
    captures another amount in the dashboard; the resume's sync settled *our* pending row as the
    capture, with *our* amount (captured + voided > authorized, payment_status wrong). Fixed in
    ``orders.services.sync._sync_entries``: a capture of another amount is not ours, our row fails."""
    from datetime import timedelta

    from orders import services
    from payments import gateway, ledger

    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    gateway.reset_client()
    order, pi = placed_order, placed_order.payment_intent_id
    localstripe.fault(path=f"^/v1/payment_intents/{pi}/capture$", status=503, when="before")
    with pytest.raises(services.PaymentOperationPending):
        services.order_payment_capture(order_id=order.id, amount=staff_amount, actor="staff")
    localstripe.faults_clear()
    localstripe.dashboard_capture(pi, amount=9)

    services.payment_operations_resume(older_than=timedelta(0))

    totals = ledger.ledger_totals(payment_intent_id=pi)
    assert (totals.authorized, totals.captured, totals.voided) == (order.total, 9, order.total - 9)
    assert services.order_payment_sync(payment_intent_id=pi).payment_status == "partially_captured"
