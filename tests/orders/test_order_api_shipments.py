"""Order API: ``shipments`` and ``refunds`` (issue 11 item 4), read without a query more.

Shipments are recorded by the real fulfilment services; refunds are ledger rows of the order's
PaymentIntent (what ``orders.services.payment_ops`` and the webhooks write), in every status.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from orders import fulfillment
from payments import ledger
from payments.models import LedgerEntry
from tests.factories import UserFactory
from tests.factories.orders import OrderFactory, OrderLineFactory
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.django_db

# GET /store/orders/{id} for a guest: the order (shipments and refunds inside it), lines, ledger totals.
ORDER_GET_QUERIES = 3
# GET /store/customers/me/orders: token, count, page, lines, ledger totals.
MY_ORDERS_QUERIES = 5


def _ledger(order, *, kind: str, amount: int, status: str = "succeeded", key: str = "") -> LedgerEntry:
    return LedgerEntry.objects.create(
        payment_intent_id=order.payment_intent_id,
        order_id=order.id,
        kind=kind,
        status=status,
        amount=amount,
        currency_code=order.currency_code,
        idempotency_key=key or f"test:{order.id}:{kind}:{status}:{amount}",
    )


def _captured(order, amount: int = 1088) -> None:
    intent = order.payment_intent_id
    _ledger(order, kind="authorization", amount=amount, key=ledger.key_authorization(payment_intent_id=intent))
    _ledger(order, kind="capture", amount=amount, key=ledger.key_capture(payment_intent_id=intent))


def _ship(order, *, carrier: str = "UPS", tracking_number: str = "1Z999AA10123456784", deliver: bool = False) -> None:
    fulfillment.order_fulfil(order_id=order.id)
    fulfillment.order_ship(order_id=order.id, carrier=carrier, tracking_number=tracking_number)
    if deliver:
        fulfillment.order_deliver(order_id=order.id)


def _iso(value: str) -> datetime:
    assert value.endswith("Z"), value  # the API's timestamps are UTC with a Z
    return datetime.fromisoformat(value)


def test_a_new_order_has_no_shipments_or_refunds(api_client):
    order = OrderFactory()

    body = api_client.get(f"/store/orders/{order.id}").json()["order"]

    assert body["shipments"] == []
    assert body["refunds"] == []


def test_a_shipped_order_shows_the_carrier_and_tracking_number(api_client):
    order = OrderFactory()
    _ship(order, carrier=" DHL ", tracking_number=" JD014600003828 ")

    body = api_client.get(f"/store/orders/{order.id}").json()["order"]

    assert body["fulfillment_status"] == "shipped"
    [shipment] = body["shipments"]
    assert shipment["carrier"] == "DHL"
    assert shipment["tracking_number"] == "JD014600003828"
    assert shipment["tracking_url"] is None
    assert shipment["delivered_at"] is None
    event = order.events.get(type="shipment_recorded")
    assert _iso(shipment["shipped_at"]) == event.created_at


def test_a_delivered_order_shows_when_it_was_delivered(api_client):
    order = OrderFactory()
    _ship(order, deliver=True)

    [shipment] = api_client.get(f"/store/orders/{order.id}").json()["order"]["shipments"]

    delivered = order.events.get(type="fulfillment_status_changed", payload__to="delivered")
    assert _iso(shipment["delivered_at"]) == delivered.created_at
    assert _iso(shipment["delivered_at"]) >= _iso(shipment["shipped_at"])


def test_refunds_list_pending_and_succeeded_rows_of_the_order_only(api_client):
    order = OrderFactory(payment_status="partially_refunded")
    other = OrderFactory()
    _captured(order)
    _ledger(order, kind="refund", amount=300)
    _ledger(order, kind="refund", amount=200, status="pending")
    _ledger(order, kind="refund", amount=150, status="failed")  # returned nothing
    _ledger(order, kind="refund", amount=300, status="canceled")  # the same refund, recorded by another row
    _ledger(order, kind="void", amount=50)  # a released authorization is not a refund
    _ledger(other, kind="refund", amount=999)

    body = api_client.get(f"/store/orders/{order.id}").json()["order"]

    assert [(r["amount"], r["status"]) for r in body["refunds"]] == [(300, "succeeded"), (200, "pending")]
    assert body["amount_refunded"] == 300  # only settled refunds count
    first = LedgerEntry.objects.get(payment_intent_id=order.payment_intent_id, kind="refund", status="succeeded")
    assert _iso(body["refunds"][0]["created_at"]) == first.created_at
    assert set(body["refunds"][0]) == {"amount", "status", "created_at"}


def test_order_get_query_count_does_not_grow_with_shipments_and_refunds(api_client, django_assert_num_queries):
    plain = OrderFactory()
    OrderLineFactory(order=plain)
    busy = OrderFactory()
    OrderLineFactory(order=busy)
    OrderLineFactory(order=busy)
    _captured(busy)
    _ship(busy, deliver=True)
    for amount in (100, 200, 300):
        _ledger(busy, kind="refund", amount=amount)

    for order in (plain, busy):
        with django_assert_num_queries(ORDER_GET_QUERIES):
            response = api_client.get(f"/store/orders/{order.id}")
        assert response.status_code == 200
    assert len(response.json()["order"]["refunds"]) == 3
    assert len(response.json()["order"]["shipments"]) == 1


def test_my_orders_query_count_does_not_grow_with_shipments_and_refunds(
    api_client, customer_token, django_assert_num_queries
):
    user, token = customer_token
    orders = [OrderFactory(customer=user, email=user.email) for _ in range(4)]
    for order in orders:
        OrderLineFactory(order=order)
        _captured(order)
        _ship(order)
        _ledger(order, kind="refund", amount=100)

    with django_assert_num_queries(MY_ORDERS_QUERIES):
        response = api_client.get("/store/customers/me/orders", **bearer(token))

    listed = response.json()["orders"]
    assert len(listed) == 4
    assert all(len(o["shipments"]) == 1 and [r["amount"] for r in o["refunds"]] == [100] for o in listed)


def test_another_customers_order_stays_hidden(api_client, customer_token):
    user, _ = customer_token
    order = OrderFactory(customer=user, email=user.email)
    _ship(order)

    response = api_client.get(f"/store/orders/{order.id}", **bearer(token_for(UserFactory())))

    assert response.status_code == 404
    assert "shipments" not in response.content.decode()


def test_a_recorded_tracking_url_is_shown(api_client):
    order = OrderFactory()
    fulfillment.order_fulfil(order_id=order.id)
    fulfillment.order_ship(
        order_id=order.id,
        carrier="UPS",
        tracking_number="1Z999AA10123456784",
        tracking_url="https://www.ups.com/track?tracknum=1Z999AA10123456784",
    )

    [shipment] = api_client.get(f"/store/orders/{order.id}").json()["order"]["shipments"]

    assert shipment["tracking_url"] == "https://www.ups.com/track?tracknum=1Z999AA10123456784"
