"""Query budget of POST /store/carts/{id}/complete: independent of the number of lines."""

from __future__ import annotations

import pytest

from tests.orders.conftest import complete, make_cart, pay_cart

pytestmark = pytest.mark.django_db

# The Stripe call (one PaymentIntent retrieve over HTTP) is not a query. The confirmation
# email runs after commit in a Celery task and is not part of the request.
COMPLETE_QUERIES = 19


@pytest.fixture(autouse=True)
def order_counter(db):
    """Steady state: the counter row exists (a migration seeds it; transactional tests may flush it)."""
    from orders.models import OrderCounter

    OrderCounter.objects.get_or_create(name="order", defaults={"value": 0})


def _complete_queries(api_client, localstripe, shop, lines: int, django_assert_num_queries) -> None:
    variants = [shop.variant(stock=10) for _ in range(lines)]
    cart_id = make_cart(shop, [(variant, 1 + i % 3) for i, variant in enumerate(variants)])
    paid = pay_cart(localstripe, cart_id)
    with django_assert_num_queries(COMPLETE_QUERIES):
        response = complete(api_client, cart_id, paid.payment_intent_id)
    assert response.status_code == 201, response.content
    assert len(response.json()["order"]["items"]) == lines


def test_complete_query_count_one_line(api_client, localstripe, shop, django_assert_num_queries):
    _complete_queries(api_client, localstripe, shop, 1, django_assert_num_queries)


def test_complete_query_count_twenty_lines(api_client, localstripe, shop, django_assert_num_queries):
    _complete_queries(api_client, localstripe, shop, 20, django_assert_num_queries)


def test_repeat_complete_query_count(api_client, paid_cart, django_assert_num_queries):
    complete(api_client, paid_cart.cart_id, paid_cart.payment_intent_id)
    with django_assert_num_queries(7):
        assert complete(api_client, paid_cart.cart_id, paid_cart.payment_intent_id).status_code == 200
