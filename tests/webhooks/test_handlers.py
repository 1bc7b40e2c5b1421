"""One test per handled event family: what each does to orders, payments and disputes."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from rest_framework.test import APIClient

from catalog.models import StockReservation
from orders.models import Order, OrderEvent
from payments import disputes, gateway, ledger
from payments.models import Dispute, PaymentSession, PaymentSessionStatus
from tests.helpers import DECLINED_AT_CONFIRM, THREE_D_SECURE, confirm_card
from tests.orders.conftest import complete
from tests.plugins.localstripe import LocalStripeError
from tests.webhooks.conftest import make_cart, pay_cart, shop_for, stripe_example, unconfirmed_cart
from webhooks.models import WebhookEventStatus

pytestmark = pytest.mark.django_db


def _intent(localstripe: Any, payment_intent_id: str) -> dict[str, Any]:
    return localstripe.request("GET", f"/v1/payment_intents/{payment_intent_id}")


def test_handler_payment_failed_marks_session_and_releases_stock(localstripe, send):
    cart_id, pi = unconfirmed_cart()
    with pytest.raises(LocalStripeError):
        confirm_card(localstripe, pi, DECLINED_AT_CONFIRM)  # declined
    row = send("payment_intent.payment_failed", _intent(localstripe, pi))
    assert row.status == WebhookEventStatus.PROCESSED
    assert row.last_error.startswith("session_failed")
    assert PaymentSession.objects.get(payment_intent_id=pi).status == PaymentSessionStatus.FAILED
    assert not StockReservation.objects.filter(cart_id=cart_id).exists()
    assert Order.objects.count() == 0


def test_handler_requires_action_status_only(localstripe, send):
    _, pi = unconfirmed_cart()
    confirm_card(localstripe, pi, THREE_D_SECURE)
    row = send("payment_intent.requires_action", _intent(localstripe, pi))
    assert row.last_error.startswith("session_updated")
    assert PaymentSession.objects.get(payment_intent_id=pi).status == PaymentSessionStatus.REQUIRES_ACTION
    assert Order.objects.count() == 0


def test_handler_stale_failure_after_success_does_not_undo_it(localstripe, send):
    """A payment_failed snapshot arriving after the retry succeeded: the re-read intent wins."""
    shop = shop_for("usd")
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(), 1)]))
    stale = _intent(localstripe, paid.payment_intent_id) | {"status": "requires_payment_method"}
    stale["last_payment_error"] = {"code": "card_declined"}
    row = send("payment_intent.payment_failed", stale)
    assert row.last_error.startswith("order_created")
    assert Order.objects.get().payment_status == "authorized"


def test_handler_canceled_voids_authorization_and_alerts_staff(localstripe, send, caplog):
    shop = shop_for("usd")
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(), 1)]))
    assert complete(APIClient(), paid.cart_id, paid.payment_intent_id).status_code == 201
    localstripe.request("POST", f"/v1/payment_intents/{paid.payment_intent_id}/cancel", {})  # expired / voided
    obj = _intent(localstripe, paid.payment_intent_id) | {"cancellation_reason": "automatic"}
    with caplog.at_level(logging.ERROR, logger="webhooks.handlers"):
        row = send("payment_intent.canceled", obj)
    order = Order.objects.get()
    assert order.payment_status == "canceled"
    totals = ledger.ledger_totals(payment_intent_id=paid.payment_intent_id)
    assert (totals.authorized, totals.voided, totals.captured) == (paid.total, paid.total, 0)
    assert OrderEvent.objects.filter(order=order, type="payment_status_changed", payload__to="canceled").exists()
    assert "staff_alert kind=authorization_canceled" in caplog.text
    assert "authorized->canceled" in row.last_error
    from djstripe.models import PaymentIntent as MirroredPaymentIntent

    assert MirroredPaymentIntent.objects.get(id=paid.payment_intent_id).stripe_data["status"] == "canceled"  # mirror


def test_handler_dispute_on_order_records_event_and_holds_fulfillment(localstripe, send):
    shop = shop_for("usd")
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(), 1)]), capture_method="automatic")
    complete(APIClient(), paid.cart_id, paid.payment_intent_id)
    intent = _intent(localstripe, paid.payment_intent_id)
    dispute = stripe_example("dispute") | {
        "id": "dp_handler_1",
        "charge": gateway.latest_charge_id(intent),
        "payment_intent": None,  # Stripe's example has none: found through the charge
        "amount": paid.total,
        "status": "needs_response",
    }
    row = send("charge.dispute.created", dispute)
    order = Order.objects.get()
    stored = Dispute.objects.get()
    assert (stored.payment_intent_id, stored.order_id, stored.is_open) == (paid.payment_intent_id, order.id, True)
    assert disputes.dispute_open_for_payment_intent(payment_intent_id=paid.payment_intent_id)
    assert OrderEvent.objects.filter(order=order, type="dispute_opened").count() == 1
    assert row.last_error.startswith("dispute dp_handler_1 created")

    send("charge.dispute.closed", dispute | {"status": "won"})
    assert not disputes.dispute_open_for_payment_intent(payment_intent_id=paid.payment_intent_id)
    assert OrderEvent.objects.filter(order=order, type="dispute_closed").count() == 1


def test_handler_events_of_foreign_payment_intents_ignored(localstripe, send):
    row = send("payment_intent.succeeded", stripe_example("payment_intent"))
    assert row.status == WebhookEventStatus.PROCESSED
    assert row.last_error.endswith("not a PaymentIntent of this shop")
    refund = stripe_example("refund") | {"charge": None}
    assert send("refund.created", refund).last_error.startswith("ignored:")


def test_handler_unknown_type_acknowledged(send):
    row = send("invoice.paid", {"id": "in_1", "object": "invoice"})
    assert (row.status, row.last_error) == (WebhookEventStatus.PROCESSED, "ignored: no handler for invoice.paid")


def test_handler_paid_but_unplaceable_dead_letters_at_once(localstripe, send, caplog):
    """The session was replaced (its intent is not the cart's active one): no retry can help; staff alert."""
    shop = shop_for("usd")
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(), 1)]))
    PaymentSession.objects.filter(payment_intent_id=paid.payment_intent_id).update(is_active=False)
    with caplog.at_level(logging.ERROR):
        row = send("payment_intent.amount_capturable_updated", _intent(localstripe, paid.payment_intent_id))
    assert (row.status, row.attempts) == (WebhookEventStatus.FAILED, 1)
    assert "payment_session_stale" in row.last_error
    assert "staff_alert kind=paid_without_order" in caplog.text
