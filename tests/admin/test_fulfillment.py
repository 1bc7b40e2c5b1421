"""Fulfillment from the admin: fulfilled -> shipped (carrier, tracking) -> delivered; on hold while a dispute is open."""

from __future__ import annotations

from typing import Any

import pytest

from common.actors import Actor
from common.errors import Conflict
from orders import fulfillment
from orders.models import FulfillmentStatus, Order, OrderEvent, PaymentStatus
from payments.models import Dispute
from tests.admin.conftest import action_url, messages_of, order_url
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db


def open_dispute(order: Order, *, is_open: bool = True) -> Dispute:
    return Dispute.objects.create(
        stripe_dispute_id=f"dp_test_{order.pk[-8:]}",
        payment_intent_id=order.payment_intent_id,
        order_id=order.pk,
        amount=order.total,
        currency_code=order.currency_code,
        reason="fraudulent",
        status="needs_response" if is_open else "won",
        is_open=is_open,
    )


def test_fulfil_ship_deliver_through_the_confirmation_pages(staff_client, staff):
    order = OrderFactory(payment_status="captured")

    first = staff_client.post(action_url(order, "fulfil"), {"ledger_version": 0, "reason": ""}, follow=True)
    second = staff_client.post(
        action_url(order, "ship"),
        {
            "ledger_version": 0,
            "carrier": "DHL",
            "tracking_number": "JD0146 0000 1234",
            "tracking_url": "https://www.dhl.com/track?id=JD014600001234",
        },
        follow=True,
    )
    third = staff_client.post(action_url(order, "deliver"), {"ledger_version": 0}, follow=True)

    assert [messages_of(r)[0][0] for r in (first, second, third)] == ["success"] * 3
    order.refresh_from_db()
    assert order.fulfillment_status == FulfillmentStatus.DELIVERED
    assert order.status == "completed"  # delivered with its money captured
    events = OrderEvent.objects.filter(order=order).order_by("created_at", "id")
    assert [(e.type, e.payload.get("to")) for e in events] == [
        ("fulfillment_status_changed", "fulfilled"),
        ("fulfillment_status_changed", "shipped"),
        ("shipment_recorded", None),
        ("fulfillment_status_changed", "delivered"),
        ("status_changed", "completed"),
    ]
    shipment = events.get(type="shipment_recorded")
    assert shipment.payload == {
        "carrier": "DHL",
        "tracking_number": "JD0146 0000 1234",
        "tracking_url": "https://www.dhl.com/track?id=JD014600001234",
    }
    assert {e.actor_user_id for e in events} == {str(staff.pk)} and {e.actor for e in events} == {"staff"}
    assert "JD0146 0000 1234" in staff_client.get(order_url(order)).content.decode()


def test_ship_needs_carrier_and_tracking_number(staff_client):
    order = OrderFactory(fulfillment_status="fulfilled")

    response = staff_client.post(action_url(order, "ship"), {"ledger_version": 0, "carrier": "", "tracking_number": ""})

    assert response.status_code == 200
    assert response.content.decode().count("This field is required.") == 2
    assert Order.objects.get(pk=order.pk).fulfillment_status == FulfillmentStatus.FULFILLED


def test_a_step_out_of_order_is_refused_with_a_message(staff_client):
    order = OrderFactory()  # not fulfilled yet

    response = staff_client.post(action_url(order, "deliver"), {"ledger_version": 0}, follow=True)

    [(level, text)] = messages_of(response)
    assert level == "error" and "Cannot change fulfillment_status from not_fulfilled to delivered" in text


def test_fulfillment_is_blocked_while_a_dispute_is_open(staff_client):
    order = OrderFactory(payment_status="captured")
    open_dispute(order)

    page = staff_client.get(order_url(order)).content.decode()
    assert "Dispute open" in page and "on hold: dispute open" in page
    assert f'href="{action_url(order, "fulfil")}"' not in page
    response = staff_client.post(action_url(order, "fulfil"), {"ledger_version": 0}, follow=True)

    [(level, text)] = messages_of(response)
    assert level == "error" and "dispute" in text.lower()
    assert Order.objects.get(pk=order.pk).fulfillment_status == FulfillmentStatus.NOT_FULFILLED
    assert not OrderEvent.objects.filter(order=order).exists()


def test_a_closed_dispute_no_longer_blocks():
    order = OrderFactory(payment_status="captured")
    open_dispute(order, is_open=False)

    fulfillment.order_fulfil(order_id=order.pk, actor=Actor.STAFF, user_id="cus_x")

    assert Order.objects.get(pk=order.pk).fulfillment_status == FulfillmentStatus.FULFILLED


# --- Row 4: fulfilment needs a live payment ----------------------------------------------------


@pytest.mark.parametrize("payment_status", ["not_paid", "requires_action", "canceled", "refunded"])
def test_fulfil_and_ship_refused_without_a_live_payment(payment_status: str) -> None:
    """Issue 10 row 4: an order whose payment is canceled, expired, refunded or never made is not fulfilled or shipped."""
    unfulfilled = OrderFactory(payment_status=payment_status)
    packed = OrderFactory(payment_status=payment_status, fulfillment_status=FulfillmentStatus.FULFILLED)

    with pytest.raises(Conflict) as fulfil_error:
        fulfillment.order_fulfil(order_id=unfulfilled.pk)
    with pytest.raises(Conflict) as ship_error:
        fulfillment.order_ship(order_id=packed.pk, carrier="DHL", tracking_number="JD1")

    assert fulfil_error.value.code == ship_error.value.code == "payment_not_live"
    assert Order.objects.get(pk=unfulfilled.pk).fulfillment_status == FulfillmentStatus.NOT_FULFILLED
    assert Order.objects.get(pk=packed.pk).fulfillment_status == FulfillmentStatus.FULFILLED


@pytest.mark.parametrize("payment_status", ["authorized", "partially_captured", "captured", "partially_refunded"])
def test_fulfil_and_ship_allowed_with_a_live_payment(payment_status: str) -> None:
    """Issue 10 row 4: the live payment states still fulfil and ship."""
    order = OrderFactory(payment_status=payment_status)

    fulfillment.order_fulfil(order_id=order.pk)
    fulfillment.order_ship(order_id=order.pk, carrier="DHL", tracking_number="JD1")

    assert Order.objects.get(pk=order.pk).fulfillment_status == FulfillmentStatus.SHIPPED


def test_admin_offers_no_fulfil_button_for_a_refunded_order(staff_client: Any) -> None:
    """Issue 10 row 4: the admin shows the fulfil action disabled (with the reason) and refuses the POST."""
    order = OrderFactory(payment_status=PaymentStatus.REFUNDED)

    page = staff_client.get(order_url(order)).content.decode()
    response = staff_client.post(action_url(order, "fulfil"), {"ledger_version": 0, "reason": ""}, follow=True)

    assert "payment not live" in page
    assert f'href="{action_url(order, "fulfil")}"' not in page
    [(level, text)] = messages_of(response)
    assert level == "error" and "payment" in text
    assert Order.objects.get(pk=order.pk).fulfillment_status == FulfillmentStatus.NOT_FULFILLED
