"""Order independence: a full payment lifecycle's events, delivered in random orders and twice each,
end in the same order / ledger / session / dispute state as in-order delivery.

Lifecycle (done at localstripe, as Stripe would): authorized -> captured -> partially refunded
-> refunded -> disputed. Each step emits the events Stripe sends for it; localstripe never sends
most of them, so they are built from Stripe's example objects (with the real ids) and signed here.

In-order run: each step's events are delivered right after the step. Permuted runs: after each
step a random subset of the events emitted so far (in random order, each delivered twice) is
delivered, the rest at the end; so handlers see Stripe in every intermediate state, and events
about a state Stripe has already left.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from orders.models import Order, OrderEvent
from payments import ledger
from payments.models import Dispute, LedgerEntry, PaymentSession
from tests.webhooks.conftest import build_event, deliver, make_cart, pay_cart, shop_for, stripe_example
from webhooks.models import WebhookEvent, WebhookEventStatus

pytestmark = pytest.mark.django_db

PARTIAL_REFUND = 700
SEEDS = [11, 23, 37, 41, 59, 73]


def _charge_id(intent: dict[str, Any]) -> str:
    charge = intent["latest_charge"]
    return charge["id"] if isinstance(charge, dict) else charge


def _refund_event(localstripe: Any, refund: dict[str, Any], event_type: str) -> dict[str, Any]:
    obj = stripe_example("refund")
    obj.update(
        id=refund["id"],
        amount=refund["amount"],
        charge=refund["charge"],
        currency=refund["currency"],
        payment_intent=refund.get("payment_intent"),
        status=refund.get("status", "succeeded"),
    )
    return build_event(event_type, obj)


def _dispute_event(intent: dict[str, Any], event_type: str, **changes: Any) -> dict[str, Any]:
    obj = stripe_example("dispute")
    obj.update(
        id=f"dp_{intent['id'][3:]}",
        charge=_charge_id(intent),
        payment_intent=intent["id"],
        amount=intent["amount"],
        currency=intent["currency"],
        status="needs_response",
        reason="fraudulent",
    )
    obj.update(changes)
    return build_event(event_type, obj)


def lifecycle(localstripe: Any, shop: Any):  # noqa: ANN201 - a generator of (step, [events])
    """Run the lifecycle at localstripe step by step; yield each step's events once it happened."""
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(stock=50), 2)]))
    pi = paid.payment_intent_id

    def intent() -> dict[str, Any]:
        return localstripe.request("GET", f"/v1/payment_intents/{pi}")

    def charge() -> dict[str, Any]:
        return localstripe.request("GET", f"/v1/charges/{_charge_id(intent())}")

    yield paid, [build_event("payment_intent.amount_capturable_updated", intent())]

    localstripe.request("POST", f"/v1/payment_intents/{pi}/capture", {})
    yield paid, [build_event("charge.captured", charge()), build_event("payment_intent.succeeded", intent())]

    refund = localstripe.request("POST", "/v1/refunds", {"payment_intent": pi, "amount": PARTIAL_REFUND})
    yield paid, [_refund_event(localstripe, refund, "refund.created"), build_event("charge.refunded", charge())]

    rest = localstripe.request("POST", "/v1/refunds", {"payment_intent": pi, "amount": paid.total - PARTIAL_REFUND})
    yield (
        paid,
        [
            _refund_event(localstripe, rest, "refund.created"),
            _refund_event(localstripe, rest, "charge.refund.updated"),
            build_event("charge.refunded", charge()),
        ],
    )

    current = intent()
    yield (
        paid,
        [
            _dispute_event(current, "charge.dispute.created"),
            _dispute_event(
                current, "charge.dispute.funds_withdrawn", balance_transactions=[{"amount": -current["amount"]}]
            ),
            _dispute_event(current, "charge.dispute.updated", status="under_review"),
        ],
    )


def process(client: Any, capture: Any, events: list[dict[str, Any]]) -> None:
    for event in events:
        with capture(execute=True):  # eager Celery: processing runs when the inbox row commits
            assert deliver(client, event).status_code == 200


def final_state(paid: Any) -> dict[str, Any]:
    order = Order.objects.get(cart_id=paid.cart_id)
    totals = ledger.ledger_totals(payment_intent_id=paid.payment_intent_id)
    dispute = Dispute.objects.get(payment_intent_id=paid.payment_intent_id)
    events = list(OrderEvent.objects.filter(order=order).values_list("type", flat=True))
    return {
        "order": (order.status, order.payment_status, order.fulfillment_status, order.total),
        "ledger": (totals.authorized, totals.captured, totals.voided, totals.refunded, totals.refund_pending),
        "entries": sorted(
            LedgerEntry.objects.filter(payment_intent_id=paid.payment_intent_id).values_list("kind", "status", "amount")
        ),
        "session": PaymentSession.objects.get(payment_intent_id=paid.payment_intent_id).status,
        "dispute": (
            dispute.status,
            dispute.is_open,
            dispute.amount,
            dispute.reason,
            dispute.funds_withdrawn,
            dispute.order_id == order.id,
        ),
        "orders_for_cart": Order.objects.filter(cart_id=paid.cart_id).count(),
        "placed_events": events.count("order_placed"),
        "dispute_opened_events": events.count("dispute_opened"),
        "inbox_failed": WebhookEvent.objects.filter(
            payment_intent_id=paid.payment_intent_id, status=WebhookEventStatus.FAILED
        ).count(),
    }


def test_ordering_in_order_and_permutations_agree(
    raw_client, webhook_secret, localstripe, django_capture_on_commit_callbacks
):
    shop = shop_for("usd")

    # In order.
    paid = None
    for paid, events in lifecycle(localstripe, shop):  # noqa: B007 - the last paid cart is checked after the loop
        process(raw_client, django_capture_on_commit_callbacks, events)
    expected = final_state(paid)
    assert expected["order"][:2] == ("pending", "refunded")
    assert expected["ledger"] == (paid.total, paid.total, 0, paid.total, 0)
    assert expected["dispute"] == ("under_review", True, paid.total, "fraudulent", True, True)
    assert (expected["orders_for_cart"], expected["placed_events"], expected["dispute_opened_events"]) == (1, 1, 1)
    assert expected["inbox_failed"] == 0

    # Random interleavings, each event delivered twice.
    for seed in SEEDS:
        rng = random.Random(seed)
        pending: list[dict[str, Any]] = []
        for paid, events in lifecycle(localstripe, shop):  # noqa: B007 - the last paid cart is checked after the loop
            pending += [event for event in events for _ in range(2)]
            rng.shuffle(pending)
            cut = rng.randint(0, len(pending))
            now, pending = pending[:cut], pending[cut:]
            process(raw_client, django_capture_on_commit_callbacks, now)
        process(raw_client, django_capture_on_commit_callbacks, pending)
        assert final_state(paid) == expected, f"seed {seed}"

    # Everything reversed, after the fact.
    collected: list[dict[str, Any]] = []
    for paid, events in lifecycle(localstripe, shop):  # noqa: B007 - the last paid cart is checked after the loop
        collected += events
    process(raw_client, django_capture_on_commit_callbacks, list(reversed(collected)) * 2)
    assert final_state(paid) == expected
