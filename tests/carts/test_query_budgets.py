"""Query budgets: reading a cart and adding a line cost the same for 1 or 50 lines; so does
listing products for 1 or 30 products. Exact counts, so a regression (an N+1, or an extra
query anywhere) fails here. The numbers are documented in docs/api-checkout.md."""

from __future__ import annotations

import pytest

from tests.factories import (
    CartFactory,
    LineItemFactory,
    ProductFactory,
    ShippingOptionFactory,
    UserFactory,
    VariantFactory,
)

pytestmark = pytest.mark.django_db

# GET /store/carts/{id}: cart + region (1), lines (1), active payment session (1).
CART_GET_QUERIES = 3
# Inside a test the service's transaction.atomic() is a SAVEPOINT ... RELEASE pair (2 queries);
# in production it is BEGIN/COMMIT, which the counter does not see.
TEST_SAVEPOINT = 2
# POST /store/carts/{id}/line-items for a new variant: lock cart+region (1), variant+product (1),
# existing line of the variant (1), line count (1), price (1), insert line (1), update cart (1),
# cart reservations (1); then the response read (3). 11 in production.
LINE_ADD_QUERIES = 11 + TEST_SAVEPOINT
# The same for a variant already in the cart (merge): no count, no price; update instead of insert.
LINE_MERGE_QUERIES = 9 + TEST_SAVEPOINT
# GET /store/products?region_id=: region (1), count (1), products (1), variants+stock (1), prices (1).
PRODUCTS_LIST_QUERIES = 5
# A bearer token adds one query (token + user).
AUTH_QUERIES = 1


def _cart_with_lines(region, n: int):
    cart = CartFactory(region=region)
    for _ in range(n):
        LineItemFactory(cart=cart, variant=VariantFactory())
    return cart


@pytest.mark.parametrize("lines", [1, 50])
def test_cart_get_queries_constant(api_client, region_usd, django_assert_num_queries, lines):
    cart = _cart_with_lines(region_usd, lines)
    with django_assert_num_queries(CART_GET_QUERIES):
        response = api_client.get(f"/store/carts/{cart.id}")
    assert response.status_code == 200
    assert len(response.json()["cart"]["items"]) == lines


@pytest.mark.parametrize("lines", [1, 50])
def test_cart_line_add_queries_constant(api_client, region_usd, django_assert_num_queries, lines):
    cart = _cart_with_lines(region_usd, lines)
    variant = VariantFactory()
    with django_assert_num_queries(LINE_ADD_QUERIES):
        response = api_client.post(
            f"/store/carts/{cart.id}/line-items", {"variant_id": variant.id, "quantity": 1}, format="json"
        )
    assert response.status_code == 200, response.content
    assert len(response.json()["cart"]["items"]) == lines + 1


@pytest.mark.parametrize("lines", [1, 50])
def test_cart_line_merge_queries_constant(api_client, region_usd, django_assert_num_queries, lines):
    cart = _cart_with_lines(region_usd, lines)
    variant_id = cart.items.first().variant_id
    with django_assert_num_queries(LINE_MERGE_QUERIES):
        response = api_client.post(
            f"/store/carts/{cart.id}/line-items", {"variant_id": variant_id, "quantity": 1}, format="json"
        )
    assert response.status_code == 200, response.content
    assert len(response.json()["cart"]["items"]) == lines


def test_cart_get_with_token_adds_one_query(api_client, region_usd, django_assert_num_queries):
    user = UserFactory()
    token = api_client.post(
        "/store/auth/token", {"email": user.email, "password": "correct-horse-battery"}, format="json"
    ).json()["token"]
    cart = CartFactory(region=region_usd, customer=user)
    LineItemFactory(cart=cart)
    with django_assert_num_queries(CART_GET_QUERIES + AUTH_QUERIES):
        response = api_client.get(f"/store/carts/{cart.id}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200


@pytest.mark.parametrize("products", [1, 30])
def test_products_list_queries_constant(api_client, region_usd, django_assert_num_queries, products):
    for _ in range(products):
        product = ProductFactory()
        VariantFactory(product=product, prices={"usd": 1000, "jpy": 1500})
        VariantFactory(product=product, prices={"usd": 2000})
    ShippingOptionFactory(region=region_usd)
    with django_assert_num_queries(PRODUCTS_LIST_QUERIES):
        response = api_client.get("/store/products", {"region_id": region_usd.id, "limit": 100})
    assert response.status_code == 200
    assert response.json()["count"] == products
    assert all(v["price"]["currency_code"] == "usd" for p in response.json()["products"] for v in p["variants"])
