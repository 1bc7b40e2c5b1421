"""An order is ``completed`` once delivered with its money settled (issue 11 item 5, docs/orders.md).

Settled = nothing left to capture or authorize: captured, partially captured (the rest was
released), partially refunded or refunded. The move happens in the service that records the
last of the two facts: the delivery, or a capture recorded after it (staff, or Stripe via sync).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import TestCase

from orders import fulfillment, services
from orders.models import FulfillmentStatus, Order, OrderEvent, OrderNotification, OrderStatus, PaymentStatus
from orders.transitions import SETTLED_PAYMENT_STATUSES, order_completable, transition_allowed
from tests.factories.orders import OrderFactory
from tests.orders.conftest import Shop, complete, make_cart, pay_cart
from tests.webhooks.conftest import build_event, deliver, raw_client, webhook_secret  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


def _place(client: Any, localstripe: Any, shop: Shop, *, capture_method: str) -> Order:
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(stock=10), 2)]), capture_method=capture_method)
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = complete(client, paid.cart_id, paid.payment_intent_id)
    assert response.status_code == 201, response.content
    return Order.objects.get(pk=response.json()["order"]["id"])


def _ship(order: Order) -> None:
    fulfillment.order_fulfil(order_id=order.pk)
    fulfillment.order_ship(order_id=order.pk, carrier="UPS", tracking_number="1Z999AA10123456784")


def _completed_events(order: Order) -> list[OrderEvent]:
    return list(OrderEvent.objects.filter(order=order, type="status_changed", payload__to=OrderStatus.COMPLETED))


def test_the_rule_delivered_and_settled():
    assert transition_allowed(field="status", current=OrderStatus.PENDING, target=OrderStatus.COMPLETED)
    assert not transition_allowed(field="status", current=OrderStatus.CANCELED, target=OrderStatus.COMPLETED)
    for payment_status in PaymentStatus.values:
        for fulfillment_status in FulfillmentStatus.values:
            order = Order(
                status=OrderStatus.PENDING, payment_status=payment_status, fulfillment_status=fulfillment_status
            )
            expected = fulfillment_status == FulfillmentStatus.DELIVERED and payment_status in {
                "partially_captured",
                "captured",
                "partially_refunded",
                "refunded",
            }
            assert order_completable(order=order) is expected, (payment_status, fulfillment_status)
    assert SETTLED_PAYMENT_STATUSES.isdisjoint({"not_paid", "requires_action", "authorized", "canceled"})
    done = Order(status=OrderStatus.COMPLETED, payment_status="captured", fulfillment_status="delivered")
    assert order_completable(order=done) is False  # already completed: nothing to move


def test_delivery_of_a_captured_order_completes_it(api_client, localstripe, shop):
    order = _place(api_client, localstripe, shop, capture_method="automatic")
    _ship(order)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING  # shipped is not done
    result = fulfillment.order_deliver(order_id=order.pk, user_id="staff_1")

    order.refresh_from_db()
    assert result.status == order.status == OrderStatus.COMPLETED
    assert (order.payment_status, order.fulfillment_status) == ("captured", "delivered")
    [event] = _completed_events(order)
    assert (event.actor, event.actor_user_id, event.payload["from"]) == ("staff", "staff_1", "pending")
    assert event.payload["reason"] == "delivered and paid"
    fulfillment.order_deliver(order_id=order.pk)  # delivered again: a no-op
    assert len(_completed_events(order)) == 1


def test_delivery_before_the_capture_waits_for_it(api_client, localstripe, shop):
    order = _place(api_client, localstripe, shop, capture_method="manual")
    _ship(order)
    fulfillment.order_deliver(order_id=order.pk)
    order.refresh_from_db()
    assert (order.status, order.payment_status) == (OrderStatus.PENDING, "authorized")

    services.order_payment_capture(order_id=order.pk, amount=order.total - 500)  # part; the rest is released
    order.refresh_from_db()
    assert (order.status, order.payment_status) == (OrderStatus.COMPLETED, "partially_captured")
    assert len(_completed_events(order)) == 1


def test_capture_at_stripe_after_delivery_completes_through_the_webhook(
    api_client, localstripe, shop, raw_client, webhook_secret, django_capture_on_commit_callbacks
):
    order = _place(api_client, localstripe, shop, capture_method="manual")
    _ship(order)
    fulfillment.order_deliver(order_id=order.pk)
    localstripe.request("POST", f"/v1/payment_intents/{order.payment_intent_id}/capture", {})  # the dashboard
    intent = localstripe.request("GET", f"/v1/payment_intents/{order.payment_intent_id}")
    for _ in range(2):  # Stripe delivers it twice
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(raw_client, build_event("payment_intent.succeeded", intent)).status_code == 200

    order.refresh_from_db()
    assert (order.status, order.payment_status) == (OrderStatus.COMPLETED, "captured")
    assert len(_completed_events(order)) == 1


def test_a_completed_order_stays_completed_when_refunded(api_client, localstripe, shop):
    order = _place(api_client, localstripe, shop, capture_method="automatic")
    _ship(order)
    fulfillment.order_deliver(order_id=order.pk)
    services.order_payment_refund(order_id=order.pk, amount=None, reason="returned")
    order.refresh_from_db()
    assert (order.status, order.payment_status) == (OrderStatus.COMPLETED, "refunded")


def test_a_shipped_order_whose_authorization_lapsed_is_neither_completed_nor_emailed_as_canceled(
    api_client, localstripe, shop, mailoutbox, raw_client, webhook_secret, django_capture_on_commit_callbacks
):
    """Stripe released the authorization after the goods left: staff must look (staff_alert);
    the shopper is not told the order was canceled, and delivery does not complete it."""
    order = _place(api_client, localstripe, shop, capture_method="manual")
    _ship(order)
    localstripe.request("POST", f"/v1/payment_intents/{order.payment_intent_id}/cancel", {})
    intent = localstripe.request("GET", f"/v1/payment_intents/{order.payment_intent_id}")
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(raw_client, build_event("payment_intent.canceled", intent)).status_code == 200
    fulfillment.order_deliver(order_id=order.pk)

    order.refresh_from_db()
    assert (order.status, order.payment_status, order.fulfillment_status) == ("canceled", "canceled", "delivered")
    assert not OrderNotification.objects.filter(order=order, kind="canceled").exists()
    assert not _completed_events(order)


def test_an_order_without_payment_is_not_completed_by_delivery():
    order = OrderFactory(payment_status=PaymentStatus.CANCELED, fulfillment_status=FulfillmentStatus.SHIPPED)
    fulfillment.order_deliver(order_id=order.pk)
    order.refresh_from_db()
    assert (order.status, order.fulfillment_status) == (OrderStatus.PENDING, FulfillmentStatus.DELIVERED)
