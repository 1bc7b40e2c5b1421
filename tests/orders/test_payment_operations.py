"""Capture / cancel / refund of an order's payment and reconciliation from Stripe (real localstripe)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from common.errors import ApplicationError
from orders import services
from orders.models import Order, OrderEvent
from payments import gateway, ledger
from payments.models import LedgerEntry
from tests.orders.conftest import make_cart, pay_cart

pytestmark = pytest.mark.django_db


@pytest.fixture
def placed(localstripe, shop):
    variant = shop.variant(stock=10)
    paid = pay_cart(localstripe, make_cart(shop, [(variant, 2)]))
    order, created = services.order_place(
        cart_id=paid.cart_id, payment_intent_id=paid.payment_intent_id, actor="customer"
    )
    assert created
    return order


def _totals(order: Order) -> ledger.LedgerTotals:
    return ledger.ledger_totals(payment_intent_id=order.payment_intent_id)


def _version(order: Order) -> int:
    return _totals(order).entries


def test_capture_full(placed, caplog):
    with caplog.at_level(logging.INFO):
        order = services.order_payment_capture(order_id=placed.id, amount=None, actor="staff", user_id="cus_staff")

    assert order.payment_status == "captured"
    totals = _totals(order)
    assert (totals.authorized, totals.captured, totals.voided) == (placed.total, placed.total, 0)
    assert gateway.payment_intent_retrieve(id=placed.payment_intent_id)["status"] == "succeeded"
    event = OrderEvent.objects.filter(order=order, type="payment_status_changed").last()
    assert (event.actor, event.actor_user_id, event.payload["from"], event.payload["to"]) == (
        "staff",
        "cus_staff",
        "authorized",
        "captured",
    )
    assert event.payload["amounts_before"]["captured"] == 0
    assert event.payload["amounts_after"]["captured"] == placed.total
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("order.payment_captured "))
    assert f"amount={placed.total}" in line and f"order_id={placed.id}" in line


def test_capture_partial_releases_rest_and_sync_agrees(placed):
    part = placed.total - 500
    order = services.order_payment_capture(order_id=placed.id, amount=part, actor="staff")

    assert order.payment_status == "partially_captured"
    totals = _totals(order)
    assert (totals.captured, totals.voided, totals.refunded) == (part, 500, 0)
    # localstripe shows the released rest as a refund: reconciliation must not count it as one
    services.order_payment_sync(payment_intent_id=placed.payment_intent_id, actor="stripe")
    services.order_payment_sync(payment_intent_id=placed.payment_intent_id, actor="stripe")
    totals = _totals(order)
    assert (totals.captured, totals.voided, totals.refunded) == (part, 500, 0)
    assert Order.objects.get(pk=placed.id).payment_status == "partially_captured"


def test_capture_double_submit_captures_once(placed):
    version = _version(placed)
    services.order_payment_capture(order_id=placed.id, amount=None, actor="staff", expected_version=version)
    again = services.order_payment_capture(order_id=placed.id, amount=None, actor="staff", expected_version=version)

    assert again.payment_status == "captured"
    assert LedgerEntry.objects.filter(payment_intent_id=placed.payment_intent_id, kind="capture").count() == 1


def test_capture_validations(placed):
    with pytest.raises(ApplicationError) as exc:
        services.order_payment_capture(order_id=placed.id, amount=placed.total + 1, actor="staff")
    assert (exc.value.code, exc.value.http_status) == ("capture_amount_invalid", 422)
    with pytest.raises(ApplicationError) as exc:
        services.order_payment_capture(order_id=placed.id, amount=0, actor="staff")
    assert exc.value.code == "capture_amount_invalid"

    Order.objects.filter(pk=placed.id).update(capture_before=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ApplicationError) as exc:
        services.order_payment_capture(order_id=placed.id, amount=None, actor="staff")
    assert exc.value.code == "authorization_expired"
    assert not LedgerEntry.objects.filter(kind="capture").exists()


def test_capture_with_stale_form_is_409(placed):
    stale = _version(placed)
    services.order_payment_capture(order_id=placed.id, amount=1000, actor="staff")
    with pytest.raises(ApplicationError) as exc:
        services.order_payment_refund(order_id=placed.id, amount=100, actor="staff", expected_version=stale - 1)
    assert exc.value.code == "order_changed"


def test_refund_partial_then_rest_and_double_submit(placed):
    services.order_payment_capture(order_id=placed.id, amount=None, actor="staff")
    version = _version(placed)

    order = services.order_payment_refund(
        order_id=placed.id, amount=1000, reason="damaged", actor="staff", expected_version=version
    )
    assert order.payment_status == "partially_refunded"
    # the same form submitted twice refunds once
    services.order_payment_refund(
        order_id=placed.id, amount=1000, reason="damaged", actor="staff", expected_version=version
    )
    assert _totals(order).refunded == 1000
    charge = gateway.payment_intent_retrieve(id=placed.payment_intent_id)["latest_charge"]
    assert charge["amount_refunded"] == 1000

    with pytest.raises(ApplicationError) as exc:
        services.order_payment_refund(order_id=placed.id, amount=placed.total, actor="staff")
    assert exc.value.code == "refund_amount_invalid"

    order = services.order_payment_refund(order_id=placed.id, amount=None, actor="staff")
    assert order.payment_status == "refunded"
    assert _totals(order).refunded == placed.total
    # reconciliation agrees and adds nothing
    services.order_payment_sync(payment_intent_id=placed.payment_intent_id)
    assert _totals(order).refunded == placed.total
    assert LedgerEntry.objects.filter(kind="refund").count() == 2


def test_refund_before_capture_is_refused(placed):
    with pytest.raises(ApplicationError) as exc:
        services.order_payment_refund(order_id=placed.id, amount=100, actor="staff")
    assert exc.value.code == "nothing_to_refund"


def test_cancel_releases_authorization_and_cancels_order(placed):
    order = services.order_payment_cancel(order_id=placed.id, actor="staff", reason="customer asked")

    assert (order.payment_status, order.status, order.fulfillment_status) == ("canceled", "canceled", "canceled")
    assert gateway.payment_intent_retrieve(id=placed.payment_intent_id)["status"] == "canceled"
    totals = _totals(order)
    assert (totals.voided, totals.capturable) == (placed.total, 0)
    with pytest.raises(ApplicationError) as exc:
        services.order_payment_capture(order_id=placed.id, amount=None, actor="staff")
    assert exc.value.code == "invalid_transition"
    services.order_payment_sync(payment_intent_id=placed.payment_intent_id)
    assert _totals(order).voided == placed.total


def test_sync_records_capture_and_refund_made_outside(placed):
    """Captured and refunded in the Stripe dashboard: webhooks/reconciliation bring the order in line."""
    gateway.payment_intent_capture(id=placed.payment_intent_id, idempotency_key="dashboard:capture")
    refund = gateway.refund_create(
        payment_intent=placed.payment_intent_id, amount=300, idempotency_key="dashboard:refund"
    )

    order = services.order_payment_sync(payment_intent_id=placed.payment_intent_id, actor="stripe")
    again = services.order_payment_sync(payment_intent_id=placed.payment_intent_id, actor="stripe")

    assert order.payment_status == again.payment_status == "partially_refunded"
    totals = _totals(order)
    assert (totals.captured, totals.refunded) == (placed.total, 300)
    charge_id = gateway.latest_charge_id(gateway.payment_intent_retrieve(id=placed.payment_intent_id))
    keys = set(
        LedgerEntry.objects.filter(payment_intent_id=placed.payment_intent_id).values_list("idempotency_key", flat=True)
    )
    assert keys == {
        f"pi:{placed.payment_intent_id}:authorization",
        f"charge:{charge_id}:capture",
        f"refund:{refund['id']}",
    }
    events = list(OrderEvent.objects.filter(order=order, actor="stripe").values_list("payload__to", flat=True))
    assert events[-1] == "partially_refunded"


def test_sync_unknown_payment_intent_returns_none(localstripe):
    assert services.order_payment_sync(payment_intent_id="pi_unknown") is None


def test_order_transition_table(placed):
    with pytest.raises(ApplicationError) as exc:
        services.order_transition(order_id=placed.id, field="fulfillment_status", target="delivered", actor="staff")
    assert (exc.value.code, exc.value.http_status, exc.value.param) == ("invalid_transition", 409, "fulfillment_status")
    for target in ("fulfilled", "shipped", "delivered"):
        services.order_transition(
            order_id=placed.id, field="fulfillment_status", target=target, actor="staff", user_id="cus_x"
        )
    services.order_transition(order_id=placed.id, field="status", target="completed", actor="staff")
    services.order_transition(order_id=placed.id, field="status", target="archived", actor="staff")
    with pytest.raises(ApplicationError):
        services.order_transition(order_id=placed.id, field="status", target="pending", actor="staff")
    with pytest.raises(ApplicationError) as exc:
        services.order_transition(order_id=placed.id, field="payment_status", target="refunded", actor="staff")
    assert exc.value.code == "validation_error"
    moves = list(
        OrderEvent.objects.filter(order=placed, type__endswith="_changed")
        .order_by("id")
        .values_list("payload__field", "payload__from", "payload__to")
    )
    assert moves[-5:] == [
        ("fulfillment_status", "not_fulfilled", "fulfilled"),
        ("fulfillment_status", "fulfilled", "shipped"),
        ("fulfillment_status", "shipped", "delivered"),
        ("status", "pending", "completed"),
        ("status", "completed", "archived"),
    ]
