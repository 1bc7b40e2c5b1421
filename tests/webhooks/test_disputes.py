"""payments.disputes: upsert from Stripe dispute objects, monotonic and order-independent."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from payments import disputes
from payments.models import Dispute
from tests.webhooks.conftest import stripe_example

pytestmark = pytest.mark.django_db


def _dispute(status: str, **changes: Any) -> dict[str, Any]:
    obj = stripe_example("dispute")
    obj.update(
        id="dp_test_1", charge="ch_test_1", payment_intent="pi_test_1", amount=2175, currency="usd", status=status
    )
    obj.update(changes)
    return obj


SNAPSHOTS = [
    ("created", _dispute("needs_response"), False, False),
    ("funds_withdrawn", _dispute("needs_response", balance_transactions=[{"amount": -2175}]), True, False),
    ("updated", _dispute("under_review"), False, False),
    ("closed", _dispute("lost"), False, False),
]


def _apply(name: str, obj: dict[str, Any], withdrawn: bool, reinstated: bool) -> disputes.DisputeChange:
    return disputes.dispute_upsert_from_stripe(
        dispute=obj, payment_intent_id="pi_test_1", funds_withdrawn=withdrawn, funds_reinstated=reinstated
    )


def _state() -> tuple[Any, ...]:
    row = Dispute.objects.get()
    return (
        row.status,
        row.is_open,
        row.amount,
        row.currency_code,
        row.reason,
        row.evidence_due_by,
        row.funds_withdrawn,
        row.funds_reinstated,
        row.payment_intent_id,
        row.charge_id,
    )


def test_dispute_created_open_with_fields():
    change = _apply(*SNAPSHOTS[0])
    assert change.created and not change.changed
    row = change.dispute
    assert (row.status, row.is_open, row.amount, row.currency_code, row.reason) == (
        "needs_response",
        True,
        2175,
        "usd",
        "general",
    )
    assert row.evidence_due_by is not None and row.evidence_due_by.year == 2024
    assert disputes.dispute_open_for_payment_intent(payment_intent_id="pi_test_1") is True
    assert disputes.dispute_open_for_payment_intent(payment_intent_id="pi_other") is False


def test_dispute_duplicate_is_noop():
    _apply(*SNAPSHOTS[0])
    assert _apply(*SNAPSHOTS[0]).is_noop


def test_dispute_closed_releases_hold():
    _apply(*SNAPSHOTS[0])
    change = _apply(*SNAPSHOTS[3])
    assert change.changed[:2] == ["status", "is_open"]
    assert disputes.dispute_open_for_payment_intent(payment_intent_id="pi_test_1") is False


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(SNAPSHOTS)))))
def test_dispute_any_delivery_order_same_final_state(order):
    for index in order:
        _apply(*SNAPSHOTS[index])
        _apply(*SNAPSHOTS[index])  # each delivered twice
    assert _state()[:2] == ("lost", False)
    assert _state()[6] is True  # funds withdrawn, whichever event said so first
    expected = (
        "lost",
        False,
        2175,
        "usd",
        "general",
        _state()[5],
        True,
        False,
        "pi_test_1",
        "ch_test_1",
    )
    assert _state() == expected


def test_dispute_payment_intent_from_charge(localstripe):
    from tests.webhooks.conftest import make_cart, pay_cart, shop_for

    shop = shop_for("usd")
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(), 1)]))
    intent = localstripe.request("GET", f"/v1/payment_intents/{paid.payment_intent_id}")
    charge_id = intent["latest_charge"]["id"] if isinstance(intent["latest_charge"], dict) else intent["latest_charge"]
    obj = _dispute("needs_response", charge=charge_id, payment_intent=None)
    assert disputes.dispute_payment_intent_id(dispute=obj) == paid.payment_intent_id
