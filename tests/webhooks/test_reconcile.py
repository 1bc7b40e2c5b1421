"""``manage.py reconcile_payments``: no webhook ever arrives, the sweep repairs; a second run changes nothing."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from catalog.models import StockLevel
from orders.models import Order, OrderEvent
from payments import ledger
from payments.models import LedgerEntry, PaymentSession, PaymentSessionStatus
from tests.helpers import DECLINED_AT_CONFIRM, confirm_card
from tests.plugins.localstripe import LocalStripeError
from tests.webhooks.conftest import make_cart, pay_cart, shop_for, unconfirmed_cart
from webhooks import reconciliation
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db


def run(**options: Any) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("reconcile_payments", grace_seconds=0, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def snapshot() -> tuple[Any, ...]:
    return (
        sorted(Order.objects.values_list("id", "status", "payment_status", "fulfillment_status")),
        sorted(LedgerEntry.objects.values_list("idempotency_key", "kind", "status", "amount")),
        OrderEvent.objects.count(),
        sorted(PaymentSession.objects.values_list("id", "status")),
        sorted(StockLevel.objects.values_list("variant_id", "on_hand")),
    )


def test_reconcile_paid_cart_without_webhook_gets_its_order(localstripe):
    shop = shop_for("usd")
    variant = shop.variant(stock=5)
    paid = pay_cart(localstripe, make_cart(shop, [(variant, 2)]))
    assert WebhookEvent.objects.count() == 0 and Order.objects.count() == 0  # nothing will ever arrive

    out, err = run()
    order = Order.objects.get()
    assert f"fixed: order_created {paid.payment_intent_id} order={order.id}" in out
    assert "checked 1 payment session(s), fixed 1, errors 0" in out
    assert err == ""
    assert (order.cart_id, order.payment_status, order.total) == (paid.cart_id, "authorized", paid.total)
    assert StockLevel.objects.get(variant=variant).on_hand == 3
    assert OrderEvent.objects.filter(order=order, type="order_placed", actor="system").count() == 1

    before = snapshot()
    out, err = run()
    assert "fixed 0, errors 0: nothing to fix" in out
    assert snapshot() == before


def test_reconcile_order_lagging_stripe_is_synced(localstripe):
    """Captured and partially refunded in the Stripe dashboard; none of the events reached us."""
    shop = shop_for("usd")
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(), 1)]))
    run()
    order = Order.objects.get()
    localstripe.request("POST", f"/v1/payment_intents/{paid.payment_intent_id}/capture", {})
    localstripe.request("POST", "/v1/refunds", {"payment_intent": paid.payment_intent_id, "amount": 500})

    out, _ = run()
    assert (
        f"fixed: order_updated {paid.payment_intent_id} order={order.id} payment_status=authorized->partially_refunded"
        in out
    )
    order.refresh_from_db()
    totals = ledger.ledger_totals(payment_intent_id=paid.payment_intent_id)
    assert (order.payment_status, totals.captured, totals.refunded) == ("partially_refunded", paid.total, 500)

    before = snapshot()
    assert "nothing to fix" in run()[0]
    assert snapshot() == before


def test_reconcile_declined_payment_releases_session(localstripe):
    from catalog.models import StockReservation

    cart_id, pi = unconfirmed_cart()
    with pytest.raises(LocalStripeError) as declined:
        confirm_card(localstripe, pi, DECLINED_AT_CONFIRM)  # attaches, then declines at confirm
    assert declined.value.status == 402
    out, _ = run()
    assert f"fixed: session_failed {pi}" in out
    assert PaymentSession.objects.get(payment_intent_id=pi).status == PaymentSessionStatus.FAILED
    assert not StockReservation.objects.filter(cart_id=cart_id).exists()
    assert Order.objects.count() == 0
    assert "nothing to fix" in run()[0]


def test_reconcile_ignores_recent_sessions_within_grace(localstripe, settings):
    shop = shop_for("usd")
    pay_cart(localstripe, make_cart(shop, [(shop.variant(), 1)]))
    report = reconciliation.payments_reconcile()  # default grace: 120 s; the checkout may be in flight
    assert (report.checked, report.fixes) == (0, [])
    assert Order.objects.count() == 0


def test_reconcile_unfulfillable_payment_released_once(localstripe):
    """Stock ran out after the shopper paid: no order, the authorization is released, a second run is a no-op."""
    from orders.models import CheckoutIncident

    shop = shop_for("usd")
    variant = shop.variant(stock=1)
    first = pay_cart(localstripe, make_cart(shop, [(variant, 1)]))
    second = pay_cart(localstripe, make_cart(shop, [(variant, 1)]), reserve=False)  # oversold
    out, _ = run()
    assert Order.objects.get().cart_id == first.cart_id  # the older payment got the last unit
    assert f"fixed: unfulfillable {second.payment_intent_id}" in out
    incident = CheckoutIncident.objects.get()
    assert (incident.payment_intent_id, incident.resolution) == (second.payment_intent_id, "payment_canceled")
    intent = localstripe.request("GET", f"/v1/payment_intents/{second.payment_intent_id}")
    assert intent["status"] == "canceled"
    assert (
        PaymentSession.objects.get(payment_intent_id=second.payment_intent_id).status == PaymentSessionStatus.CANCELED
    )

    before = snapshot()
    assert "nothing to fix" in run()[0]
    assert snapshot() == before
