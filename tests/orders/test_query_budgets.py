"""Statement budget of ``POST /store/carts/{id}/complete`` (issue 13): the same for 1 and 50 lines.

The Stripe call (one PaymentIntent retrieve over HTTP) is not a statement; the confirmation
email runs after commit in a Celery task and is not part of the request.
"""

from __future__ import annotations

import pytest

from tests.orders.conftest import make_cart, pay_cart

pytestmark = pytest.mark.django_db

COMPLETE_QUERIES = 19
COMPLETE_WITH_IDEMPOTENCY_KEY_QUERIES = 21


@pytest.fixture(autouse=True)
def order_counter(db):
    """Steady state: the counter row exists (a migration seeds it; transactional tests may flush it)."""
    from orders.models import OrderCounter

    OrderCounter.objects.get_or_create(name="order", defaults={"value": 0})


def _paid(shop, localstripe, lines: int):
    variants = [shop.variant(stock=10) for _ in range(lines)]
    cart_id = make_cart(shop, [(variant, 1 + i % 3) for i, variant in enumerate(variants)])
    return pay_cart(localstripe, cart_id)


@pytest.mark.parametrize("lines", [1, 50])
def test_complete_statement_budget(api_client, localstripe, shop, django_assert_num_queries, lines):
    paid = _paid(shop, localstripe, lines)
    with django_assert_num_queries(COMPLETE_QUERIES):
        response = api_client.post(
            f"/store/carts/{paid.cart_id}/complete", {"payment_intent_id": paid.payment_intent_id}, format="json"
        )
    assert response.status_code == 201, response.content
    order = response.json()["order"]
    assert len(order["items"]) == lines
    assert order["total"] == paid.total
    assert order["amount_authorized"] == paid.total


@pytest.mark.parametrize("lines", [1, 50])
def test_complete_with_idempotency_key_statement_budget(
    api_client, localstripe, shop, django_assert_num_queries, lines
):
    paid = _paid(shop, localstripe, lines)
    with django_assert_num_queries(COMPLETE_WITH_IDEMPOTENCY_KEY_QUERIES):
        response = api_client.post(
            f"/store/carts/{paid.cart_id}/complete",
            {"payment_intent_id": paid.payment_intent_id},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"complete-{paid.cart_id}",
        )
    assert response.status_code == 201, response.content
    assert len(response.json()["order"]["items"]) == lines


@pytest.mark.parametrize("lines", [1, 3])
def test_complete_answer_built_in_hand_equals_the_order_read_back(api_client, localstripe, shop, lines):
    """The 201 is built from the objects placement holds: it must say what a read of the rows says."""
    paid = _paid(shop, localstripe, lines)
    placed = api_client.post(
        f"/store/carts/{paid.cart_id}/complete", {"payment_intent_id": paid.payment_intent_id}, format="json"
    )
    assert placed.status_code == 201, placed.content
    order = placed.json()["order"]

    assert api_client.get(f"/store/orders/{order['id']}").json()["order"] == order
    again = api_client.post(
        f"/store/carts/{paid.cart_id}/complete", {"payment_intent_id": paid.payment_intent_id}, format="json"
    )
    assert again.status_code == 200
    assert again.json()["order"] == order
