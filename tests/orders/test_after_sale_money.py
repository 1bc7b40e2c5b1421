"""Issue 10: money after the sale stays exact under lost responses, concurrency and changes in Stripe.

Every test runs against the Stripe stand-in (devtools/standin: real idempotency keys, injected
faults, the events Stripe sends, Stripe-side actions); nothing of ours is mocked. Each names the
row of the issue's table it pins; each failed on the code before the fix.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from catalog.models import StockLevel
from common.errors import ApplicationError
from orders import services
from orders.models import Order
from orders.transitions import payment_status_for_totals
from payments import gateway, ledger
from payments.models import LedgerEntry, LedgerEntryKind, LedgerEntryStatus
from tests.orders.conftest import make_cart, pay_cart
from webhooks import handlers

pytestmark = pytest.mark.django_db

REFUNDS = r"^/v1/refunds$"
CAPTURE = r"^/v1/payment_intents/[^/]+/capture$"
CANCEL = r"^/v1/payment_intents/[^/]+/cancel$"
ALL_TRIES = 3  # stripe-python's first try + STRIPE_MAX_NETWORK_RETRIES (2), all with the same key


@pytest.fixture(autouse=True)
def _resume_at_once(settings: Any) -> None:
    # A pending row may be resumed by the next staff action as soon as its own request is over.
    settings.PAYMENT_OPERATION_RESUME_AFTER = timedelta(0)


def _place(localstripe: Any, shop: Any, *, capture_method: str = "manual", stock: int = 10) -> Order:
    variant = shop.variant(stock=stock)
    paid = pay_cart(localstripe, make_cart(shop, [(variant, 2)]), capture_method=capture_method)
    order, created = services.order_place(
        cart_id=paid.cart_id, payment_intent_id=paid.payment_intent_id, actor="customer"
    )
    assert created
    return order


@pytest.fixture
def placed(localstripe: Any, shop: Any) -> Order:
    return _place(localstripe, shop)


@pytest.fixture
def captured(localstripe: Any, placed: Order) -> Order:
    return services.order_payment_capture(order_id=placed.id, actor="staff")


def _totals(order: Order) -> ledger.LedgerTotals:
    return ledger.ledger_totals(payment_intent_id=order.payment_intent_id)


def _stripe_refunds(order: Order) -> list[dict[str, Any]]:
    return gateway.refund_list(payment_intent=order.payment_intent_id)


def _customer_refunded_at_stripe(order: Order) -> int:
    """What Stripe returned to the cardholder: succeeded refunds that are not the release of an authorization."""
    released = {
        row.stripe_object_id
        for row in ledger.ledger_entries(payment_intent_id=order.payment_intent_id).filter(kind=LedgerEntryKind.VOID)
    }
    return sum(r["amount"] for r in _stripe_refunds(order) if r["status"] == "succeeded" and r["id"] not in released)


def _deliver(localstripe: Any, order: Order, *types: str) -> list[str]:
    """Run the stand-in's events about this order's payment through our webhook handlers."""
    notes = []
    for event in reversed(localstripe.events()):  # oldest first
        obj = event["data"]["object"]
        belongs = order.payment_intent_id in (obj.get("id"), obj.get("payment_intent"))
        if belongs and (not types or event["type"] in types):
            notes.append(handlers.dispatch(event=event))
    return notes


def _reload(order: Order) -> Order:
    return Order.objects.get(pk=order.pk)


def _assert_status_follows_ledger(order: Order) -> None:
    assert _reload(order).payment_status == payment_status_for_totals(_totals(order))


# --- Row 1: outcome unknown is not failure -------------------------------------------------------


def test_row1_refund_whose_answer_is_lost_stays_pending_and_the_retry_refunds_once(localstripe, captured):
    """Row 1: Stripe refunded, every answer was lost: the row stays pending; the next attempt
    re-reads Stripe and settles it instead of refunding again under a new key."""
    localstripe.fault(path=REFUNDS, status=500, when="after", count=ALL_TRIES)

    with pytest.raises(services.PaymentOperationPending):
        services.order_payment_refund(
            order_id=captured.id, amount=500, actor="staff", expected_version=_totals(captured).entries
        )

    row = LedgerEntry.objects.get(payment_intent_id=captured.payment_intent_id, kind=LedgerEntryKind.REFUND)
    assert row.status == LedgerEntryStatus.PENDING
    assert [r["amount"] for r in _stripe_refunds(captured)] == [500]
    assert _totals(captured).refunded == 0  # not counted until known ...
    assert _totals(captured).refundable == captured.total - 500  # ... but held back from what is refundable

    # The staff member reloads the page (a new ledger version) and asks again.
    with pytest.raises(ApplicationError) as refused:
        services.order_payment_refund(
            order_id=captured.id, amount=500, actor="staff", expected_version=_totals(captured).entries
        )
    assert refused.value.code == "order_changed"  # the first one completed: look before refunding more

    assert [r["amount"] for r in _stripe_refunds(captured)] == [500]
    row.refresh_from_db()
    assert (row.status, row.stripe_object_id) == (LedgerEntryStatus.SUCCEEDED, _stripe_refunds(captured)[0]["id"])
    assert _totals(captured).refunded == 500
    assert localstripe.executed(path=REFUNDS) == 1
    keys = {r["idempotency_key"] for r in localstripe.requests_log(path=REFUNDS, method="POST")}
    assert keys == {row.idempotency_key}
    _assert_status_follows_ledger(captured)


def test_row1_refund_that_never_reached_stripe_is_sent_again_with_the_same_key(localstripe, captured):
    """Row 1: the request never reached Stripe (refused before executing): the resume sends it
    again with the same key, and Stripe refunds exactly once."""
    localstripe.fault(path=REFUNDS, status=503, when="before", count=ALL_TRIES)
    with pytest.raises(services.PaymentOperationPending):
        services.order_payment_refund(order_id=captured.id, amount=700, actor="staff")
    assert _stripe_refunds(captured) == []

    assert services.payment_operations_resume(older_than=timedelta(0)) == 1

    assert [r["amount"] for r in _stripe_refunds(captured)] == [700]
    assert _totals(captured).refunded == 700
    keys = [r["idempotency_key"] for r in localstripe.requests_log(path=REFUNDS, method="POST")]
    assert len(keys) == ALL_TRIES + 1 and len(set(keys)) == 1
    _assert_status_follows_ledger(captured)


def test_row1_capture_timeout_after_stripe_captured_is_settled_from_stripe(localstripe, placed, settings):
    """Row 1: a read timeout after Stripe captured is an unknown outcome, not a failure."""
    settings.STRIPE_TIMEOUT = 1
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    gateway.reset_client()
    localstripe.fault(path=CAPTURE, status="timeout", latency=2.5, when="after", count=1)

    with pytest.raises(services.PaymentOperationPending):
        services.order_payment_capture(order_id=placed.id, amount=placed.total - 300, actor="staff")
    assert _totals(placed).captured == 0

    assert services.payment_operations_resume(older_than=timedelta(0)) == 1

    totals = _totals(placed)
    assert (totals.captured, totals.voided) == (placed.total - 300, 300)
    assert localstripe.executed(path=CAPTURE) == 1
    assert _reload(placed).payment_status == "partially_captured"


def test_row1_cancel_with_a_reset_connection_is_finished_by_the_resume(localstripe, placed):
    """Row 1: cancel takes the same path: reset connection after Stripe canceled -> pending -> settled."""
    localstripe.fault(path=CANCEL, status="reset", when="after", count=ALL_TRIES)
    with pytest.raises(services.PaymentOperationPending):
        services.order_payment_cancel(order_id=placed.id, actor="staff")
    assert _reload(placed).status == "pending"

    services.payment_operations_resume(older_than=timedelta(0))

    order = _reload(placed)
    assert (order.status, order.payment_status, order.fulfillment_status) == ("canceled", "canceled", "canceled")
    assert _totals(placed).voided == placed.total
    assert (
        LedgerEntry.objects.filter(payment_intent_id=placed.payment_intent_id, kind=LedgerEntryKind.VOID).count() == 1
    )


def test_row1_a_definite_refusal_still_settles_failed(localstripe, captured):
    """Row 1, the other side: a card error is a definite answer: the row fails, nothing is pending."""
    localstripe.fault(path=REFUNDS, status=402, when="before", count=1)
    with pytest.raises(ApplicationError) as refused:
        services.order_payment_refund(order_id=captured.id, amount=500, actor="staff")
    assert refused.value.code == "card_declined"
    assert list(
        LedgerEntry.objects.filter(payment_intent_id=captured.payment_intent_id, kind="refund").values_list(
            "status", flat=True
        )
    ) == [LedgerEntryStatus.FAILED]
    assert _totals(captured).pending == 0


# --- Row 2: matched and settled by object id and ledger key, never twice -------------------------


def test_row2_webhook_sync_and_the_refunds_own_settle_count_it_once(localstripe, captured):
    """Row 2: the charge.refunded sync runs while our refund's answer is lost; then our own
    retry settles too: Stripe refunded 600, the ledger says 600 (was 900)."""
    services.order_payment_refund(order_id=captured.id, amount=300, actor="staff")
    localstripe.fault(path=REFUNDS, status=502, when="after", count=ALL_TRIES)
    with pytest.raises(services.PaymentOperationPending):
        services.order_payment_refund(order_id=captured.id, amount=300, actor="staff")

    _deliver(localstripe, captured, "charge.refunded", "refund.created")  # the sync sees both refunds
    services.payment_operations_resume(older_than=timedelta(0))  # our own retry of the second one

    assert sorted(r["amount"] for r in _stripe_refunds(captured)) == [300, 300]
    assert _totals(captured).refunded == 600
    rows = LedgerEntry.objects.filter(payment_intent_id=captured.payment_intent_id, kind=LedgerEntryKind.REFUND)
    assert sorted(rows.values_list("stripe_object_id", flat=True)) == sorted(r["id"] for r in _stripe_refunds(captured))
    _assert_status_follows_ledger(captured)


@pytest.mark.django_db(transaction=True)
def test_row2_a_second_refund_while_one_is_in_flight_is_refused(localstripe, shop, settings):
    """Row 2: two staff refunds at once: the second waits for the first instead of racing it.

    The first request is still running, so its row is not one to resume yet (as with the
    production setting, longer than a request). With the module's "resume at once", the second
    call resumed it itself, and whether Stripe had answered the first by then decided between
    ``order_changed`` and ``payment_operation_in_progress``: a race on a loaded machine.
    """
    settings.PAYMENT_OPERATION_RESUME_AFTER = timedelta(minutes=5)
    order = _place(localstripe, shop)
    services.order_payment_capture(order_id=order.id, actor="staff")
    localstripe.fault(path=REFUNDS, status="timeout", latency=1.5, when="before", count=1)  # slow, then answers
    outcome: dict[str, Any] = {}

    def first() -> None:
        try:
            services.order_payment_refund(order_id=order.id, amount=400, actor="staff")
            outcome["first"] = "ok"
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    deadline = timezone.now() + timedelta(seconds=5)
    while not LedgerEntry.objects.filter(payment_intent_id=order.payment_intent_id, kind="refund").exists():
        assert timezone.now() < deadline
    with pytest.raises(ApplicationError) as refused:
        services.order_payment_refund(order_id=order.id, amount=400, actor="staff")
    thread.join()

    assert refused.value.code == "payment_operation_in_progress"
    assert outcome == {"first": "ok"}
    assert [r["amount"] for r in _stripe_refunds(order)] == [400]
    assert _totals(order).refunded == 400


def test_row2_settle_never_records_a_stripe_object_twice(localstripe, captured):
    """Row 2: the ledger itself refuses to count one Stripe refund under two keys."""
    refund = localstripe.dashboard_refund(captured.payment_intent_id, amount=250)
    services.order_payment_sync(payment_intent_id=captured.payment_intent_id)  # records refund:{re}
    pending = ledger.LedgerEntryData(
        payment_intent_id=captured.payment_intent_id,
        order_id=captured.id,
        kind=LedgerEntryKind.REFUND,
        amount=250,
        currency_code=captured.currency_code,
        idempotency_key="order:x:refund:v99",
        status=LedgerEntryStatus.PENDING,
    )
    ledger.ledger_entries_record(entries=[pending])

    ledger.ledger_entry_settle(idempotency_key="order:x:refund:v99", status="succeeded", stripe_object_id=refund["id"])

    assert ledger.ledger_entry_get(idempotency_key="order:x:refund:v99").status == LedgerEntryStatus.CANCELED
    assert _totals(captured).refunded == 250


# --- Row 3: a refund that fails after succeeding -------------------------------------------------


@pytest.mark.parametrize("amount", ["all", 500])
def test_row3_refund_failed_after_succeeding_moves_the_order_back(localstripe, captured, amount):
    """Row 3: refund.failed / charge.refund.updated(failed) after success: the ledger stops
    counting it and payment_status moves back (was InvalidTransition, then dead letter)."""
    value = captured.total if amount == "all" else amount
    services.order_payment_refund(order_id=captured.id, amount=value, actor="staff")
    assert _reload(captured).payment_status == ("refunded" if amount == "all" else "partially_refunded")
    refund_id = _stripe_refunds(captured)[0]["id"]

    localstripe.refund_fail(refund_id)
    notes = _deliver(localstripe, captured, "refund.failed", "charge.refund.updated", "refund.updated")

    assert notes  # the stand-in sent them, our handlers took them
    assert _totals(captured).refunded == 0
    assert _reload(captured).payment_status == "captured"
    row = LedgerEntry.objects.get(stripe_object_id=refund_id, kind=LedgerEntryKind.REFUND)
    assert row.status == LedgerEntryStatus.FAILED
    assert _totals(captured).refundable == captured.total  # can be refunded again


# --- Row 4: a released authorization cancels the unfulfilled order and restocks ------------------


def test_row4_expired_authorization_cancels_the_order_and_restocks(localstripe, shop):
    """Row 4: Stripe cancels an expired authorization: the order is canceled, its stock back."""
    order = _place(localstripe, shop, stock=10)
    variant_id = order.lines.get().variant_id
    assert StockLevel.objects.get(variant_id=variant_id).on_hand == 8

    localstripe.authorization_expire(order.payment_intent_id)
    _deliver(localstripe, order, "payment_intent.canceled", "charge.expired")
    _deliver(localstripe, order, "payment_intent.canceled")  # a duplicate delivery changes nothing

    order = _reload(order)
    assert (order.status, order.payment_status, order.fulfillment_status) == ("canceled", "canceled", "canceled")
    assert StockLevel.objects.get(variant_id=variant_id).on_hand == 10
    assert order.events.filter(type="stock_restocked").count() == 1


def test_row4_dashboard_cancel_is_followed_like_an_expiry(localstripe, placed):
    """Row 4: canceled in the Stripe dashboard: same outcome, found by the reconcile sweep too."""
    from webhooks import reconciliation

    localstripe.dashboard_cancel(placed.payment_intent_id)
    reconciliation.payment_intent_reconcile(payment_intent_id=placed.payment_intent_id)

    order = _reload(placed)
    assert (order.status, order.payment_status) == ("canceled", "canceled")
    assert _totals(placed).voided == placed.total


# --- Row 6: a dashboard refund equal to the released rest --------------------------------------


def test_row6_dashboard_refund_equal_to_the_released_rest_reaches_the_ledger(localstripe, placed):
    """Row 6: after a partial capture, a dashboard refund of exactly the released rest is money
    returned to the cardholder, not the release (was swallowed by the equal-amount heuristic)."""
    rest = 400
    services.order_payment_capture(order_id=placed.id, amount=placed.total - rest, actor="staff")
    localstripe.dashboard_refund(placed.payment_intent_id, amount=rest)

    _deliver(localstripe, placed, "charge.refunded", "refund.created")
    services.order_payment_sync(payment_intent_id=placed.payment_intent_id)

    totals = _totals(placed)
    assert (totals.captured, totals.voided, totals.refunded) == (placed.total - rest, rest, rest)
    assert totals.refunded == _customer_refunded_at_stripe(placed)
    _assert_status_follows_ledger(placed)


# --- Row 9: the intent comes with its charge --------------------------------------------------


def test_row9_retrieve_expands_the_charge_and_the_sync_reads_no_charge(localstripe, placed):
    """Row 9: payment_intent_retrieve expands latest_charge: capture_before is Stripe's, and a
    sync needs no extra charge read."""
    intent = gateway.payment_intent_retrieve(id=placed.payment_intent_id)
    charge = intent["latest_charge"]
    assert isinstance(charge, dict)
    capture_before = charge["payment_method_details"]["card"]["capture_before"]
    assert int(placed.capture_before.timestamp()) == capture_before

    localstripe.requests_clear()
    services.order_payment_sync(payment_intent_id=placed.payment_intent_id)
    assert localstripe.requests_log(path=r"^/v1/charges") == []


# --- Row 11: the refund reason reaches Stripe; disputes move money --------------------------------


def test_row11_refund_reason_reaches_stripe(localstripe, captured):
    """Row 11: the refund reason is sent to Stripe (fraudulent informs Radar)."""
    services.order_payment_refund(order_id=captured.id, amount=100, refund_reason="fraudulent", actor="staff")
    assert _stripe_refunds(captured)[0]["reason"] == "fraudulent"
    assert (
        LedgerEntry.objects.get(kind="refund", payment_intent_id=captured.payment_intent_id).refund_reason
        == "fraudulent"
    )


def test_row11_lost_dispute_shows_the_withdrawn_funds_and_blocks_refunds(localstripe, captured):
    """Row 11: a dispute withdraws the funds (ledger, payment_status); refunds are refused while
    it is open; lost, the funds stay gone."""
    dispute = localstripe.dispute_open(payment_intent=captured.payment_intent_id)
    _deliver(localstripe, captured, "charge.dispute.created", "charge.dispute.funds_withdrawn")

    assert _reload(captured).payment_status == "refunded"
    assert _totals(captured).disputed == captured.total
    with pytest.raises(ApplicationError) as refused:
        services.order_payment_refund(order_id=captured.id, amount=100, actor="staff")
    assert refused.value.code == "dispute_open"

    localstripe.dispute_close(dispute["id"], outcome="lost")
    _deliver(localstripe, captured, "charge.dispute.closed")
    assert _totals(captured).disputed == captured.total
    assert _reload(captured).payment_status == "refunded"
    assert _totals(captured).refundable == 0


def test_row11_won_dispute_reinstates_the_funds_even_when_its_events_were_lost(localstripe, captured):
    """Row 11: won: the funds come back; the reconcile sweep finds it all with no event delivered."""
    dispute = localstripe.dispute_open(payment_intent=captured.payment_intent_id)
    localstripe.dispute_close(dispute["id"], outcome="won")

    services.order_payment_sync(payment_intent_id=captured.payment_intent_id)

    assert (
        LedgerEntry.objects.filter(payment_intent_id=captured.payment_intent_id, kind__startswith="dispute").count()
        == 2
    )
    assert _totals(captured).disputed == 0
    assert _reload(captured).payment_status == "captured"
