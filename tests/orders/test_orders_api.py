"""GET /store/orders/{id} and GET /store/customers/me/orders."""

from __future__ import annotations

import pytest

from payments.models import LedgerEntry
from tests.factories import UserFactory
from tests.factories.orders import OrderFactory, OrderLineFactory
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.django_db


def test_guest_order_readable_by_id(api_client):
    order = OrderFactory()
    OrderLineFactory(order=order, quantity=2, unit_price=500, subtotal=1000, tax_total=88, total=1088)
    LedgerEntry.objects.create(
        payment_intent_id=order.payment_intent_id,
        kind="authorization",
        amount=1088,
        currency_code="usd",
        idempotency_key=f"pi:{order.payment_intent_id}:authorization",
    )

    response = api_client.get(f"/store/orders/{order.id}")

    assert response.status_code == 200
    body = response.json()["order"]
    assert body["id"] == order.id
    assert body["amount_authorized"] == 1088
    assert body["amount_captured"] == 0
    assert body["items"][0]["quantity"] == 2
    assert body["shipping_method"] is None


def test_customer_order_only_for_that_customer(api_client, customer_token):
    user, token = customer_token
    order = OrderFactory(customer=user, email=user.email)

    assert api_client.get(f"/store/orders/{order.id}", **bearer(token)).status_code == 200
    assert api_client.get(f"/store/orders/{order.id}").status_code == 404
    other_token = token_for(UserFactory())
    response = api_client.get(f"/store/orders/{order.id}", **bearer(other_token))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert api_client.get("/store/orders/order_nope").status_code == 404


def test_my_orders_paginated_newest_first(api_client, customer_token, django_assert_num_queries):
    user, token = customer_token
    orders = [OrderFactory(customer=user, email=user.email) for _ in range(5)]
    for order in orders:
        OrderLineFactory(order=order)
    OrderFactory()  # someone else's (guest) order

    with django_assert_num_queries(5):  # token + count + page + lines + ledger totals (one query for the page)
        response = api_client.get("/store/customers/me/orders?limit=2", **bearer(token))

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 5
    assert len(body["orders"]) == 2
    assert body["next"] is not None and body["previous"] is None
    expected = [o.id for o in sorted(orders, key=lambda o: (o.created_at, o.display_id), reverse=True)]
    assert [o["id"] for o in body["orders"]] == expected[:2]
    second = api_client.get("/store/customers/me/orders?limit=2&offset=2", **bearer(token)).json()
    assert [o["id"] for o in second["orders"]] == expected[2:4]


def test_my_orders_requires_authentication(api_client):
    response = api_client.get("/store/customers/me/orders")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
