"""Statement budgets (issue 13): every cart endpoint of the store API costs the same number of SQL
statements for a cart of 1 or 50 lines, with and without an ``Idempotency-Key``; so does listing
products for 1 or 30 products. Exact counts, so a regression (an N+1, or an extra query anywhere)
fails here. The numbers are documented in docs/api-checkout.md ("Statement budgets").

Counted as Django issues them, savepoints included. Inside a test the request's outermost
``transaction.atomic()`` is a SAVEPOINT ... RELEASE pair (``TEST_SAVEPOINT``); in production it
is the driver's BEGIN/COMMIT, which no counter sees. So a write's production count is its
budget here minus ``TEST_SAVEPOINT``; any further (nested) savepoint is counted as a statement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from carts.models import Cart
from catalog import services as catalog_services
from catalog.models import StockLevel, StockReservation
from tests.factories import (
    CartFactory,
    LineItemFactory,
    ProductFactory,
    RegionFactory,
    ShippingOptionFactory,
    UserFactory,
    VariantFactory,
)

ADDRESS = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "address_1": "1 Loom Street",
    "city": "Springfield",
    "postal_code": "62701",
    "country_code": "US",
}

# GET /store/products?region_id=: region (1), count (1), products (1), variants+stock (1), prices (1).
PRODUCTS_LIST_QUERIES = 5
# The request transaction's SAVEPOINT + RELEASE inside a test (BEGIN/COMMIT in production).
TEST_SAVEPOINT = 2
# A bearer token adds one query (token + user).
AUTH_QUERIES = 1


@dataclass(frozen=True)
class World:
    cart: Cart
    region_other_id: str
    new_variant_id: str
    option_id: str

    @property
    def first_item_id(self) -> str:
        return self.cart.items.order_by("created_at", "id").first().id  # type: ignore[union-attr]


def _world(lines: int) -> World:
    region = RegionFactory(name="United States", currency_code="usd", countries=["US"], tax_rate_bps=875)
    other = RegionFactory(name="Europe", currency_code="eur", countries=["DE"], tax_rate_bps=1900, tax_inclusive=True)
    cart = CartFactory(region=region)
    for _ in range(lines):
        LineItemFactory(cart=cart, variant=VariantFactory(prices={"usd": 1000, "eur": 900}))
    return World(
        cart=cart,
        region_other_id=other.id,
        new_variant_id=VariantFactory(prices={"usd": 1500, "eur": 1400}).id,
        option_id=ShippingOptionFactory(region=region).id,
    )


@dataclass(frozen=True)
class Call:
    method: str
    path: Callable[[World], str]
    body: Callable[[World], dict[str, Any] | None]
    status: int = 200


CART = "/store/carts/{}"
CALLS: dict[str, Call] = {
    "line_add_new": Call(
        "post",
        lambda w: CART.format(w.cart.id) + "/line-items",
        lambda w: {"variant_id": w.new_variant_id, "quantity": 2},
    ),
    "line_add_merge": Call(
        "post",
        lambda w: CART.format(w.cart.id) + "/line-items",
        lambda w: {"variant_id": w.cart.items.first().variant_id, "quantity": 1},  # type: ignore[union-attr]
    ),
    "line_update_quantity": Call(
        "post", lambda w: CART.format(w.cart.id) + f"/line-items/{w.first_item_id}", lambda w: {"quantity": 3}
    ),
    "line_update_to_zero": Call(
        "post", lambda w: CART.format(w.cart.id) + f"/line-items/{w.first_item_id}", lambda w: {"quantity": 0}
    ),
    "line_delete": Call("delete", lambda w: CART.format(w.cart.id) + f"/line-items/{w.first_item_id}", lambda w: None),
    "update_email": Call("post", lambda w: CART.format(w.cart.id), lambda w: {"email": "ada@example.com"}),
    "update_addresses": Call(
        "post",
        lambda w: CART.format(w.cart.id),
        lambda w: {"shipping_address": ADDRESS, "billing_address": ADDRESS},
    ),
    "update_region": Call("post", lambda w: CART.format(w.cart.id), lambda w: {"region_id": w.region_other_id}),
    "shipping_method_set": Call(
        "post", lambda w: CART.format(w.cart.id) + "/shipping-methods", lambda w: {"option_id": w.option_id}
    ),
    "get": Call("get", lambda w: CART.format(w.cart.id), lambda w: None),
}

# Production statements per request; the same for 1 and 50 lines. A key adds the record's own statements
# (GET and DELETE take no Idempotency-Key: the header is ignored).
BUDGETS: dict[str, tuple[int, int]] = {  # name: (without key, with key)
    "line_add_new": (3, 5),
    "line_add_merge": (3, 5),
    "line_update_quantity": (3, 5),
    "line_update_to_zero": (3, 5),
    "line_delete": (3, 3),
    "update_email": (2, 4),
    "update_addresses": (2, 4),
    "update_region": (4, 6),
    "shipping_method_set": (3, 5),
    "get": (1, 1),
}


def _send(client: Any, call: Call, world: World, key: str | None) -> Any:
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    body = call.body(world)
    send = getattr(client, call.method)
    return (
        send(call.path(world), body, format="json", **headers)
        if body is not None
        else send(call.path(world), **headers)
    )


@pytest.mark.django_db
@pytest.mark.parametrize("with_key", [False, True], ids=["no-key", "key"])
@pytest.mark.parametrize("lines", [1, 50])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_cart_endpoint_statements_constant(api_client, django_assert_num_queries, name, lines, with_key):
    world = _world(lines)
    call = CALLS[name]
    path, body = call.path(world), call.body(world)  # resolved before counting (they read the test's data)
    call = Call(call.method, lambda w: path, lambda w: body, call.status)
    in_test = BUDGETS[name][with_key] + (TEST_SAVEPOINT if call.method != "get" else 0)
    with django_assert_num_queries(in_test):
        response = _send(api_client, call, world, f"k-{name}" if with_key else None)
    assert response.status_code == call.status, response.content
    cart = response.json()["cart"]
    expected_lines = lines + (name == "line_add_new") - (name in ("line_update_to_zero", "line_delete"))
    assert len(cart["items"]) == expected_lines
    assert cart["subtotal"] == sum(item["subtotal"] for item in cart["items"])


# POST /store/carts, production statements: (without key, with key) for an empty cart and for 1 and 50 items.
CREATE_BUDGETS: dict[int, tuple[int, int]] = {0: (2, 4), 1: (3, 5), 50: (3, 5)}


@pytest.mark.django_db
@pytest.mark.parametrize("with_key", [False, True], ids=["no-key", "key"])
@pytest.mark.parametrize("items", sorted(CREATE_BUDGETS))
def test_cart_create_statements(api_client, django_assert_num_queries, items, with_key):
    region = RegionFactory(name="United States", currency_code="usd", countries=["US"], tax_rate_bps=875)
    variants = [VariantFactory(prices={"usd": 1000 + i}) for i in range(items)]
    body: dict[str, Any] = {"region_id": region.id, "email": "ada@example.com"}
    if items:
        body["items"] = [{"variant_id": v.id, "quantity": 2} for v in variants]
    headers = {"HTTP_IDEMPOTENCY_KEY": "k-create"} if with_key else {}
    with django_assert_num_queries(CREATE_BUDGETS[items][with_key] + TEST_SAVEPOINT):
        response = api_client.post("/store/carts", body, format="json", **headers)
    assert response.status_code == 201, response.content
    cart = response.json()["cart"]
    assert [item["variant_id"] for item in cart["items"]] == [v.id for v in variants]  # request order
    assert cart["subtotal"] == sum(2 * (1000 + i) for i in range(items))


@pytest.mark.django_db
def test_cart_get_with_token_adds_one_query(api_client, region_usd, django_assert_num_queries):
    user = UserFactory()
    token = api_client.post(
        "/store/auth/token", {"email": user.email, "password": "correct-horse-battery"}, format="json"
    ).json()["token"]
    cart = CartFactory(region=region_usd, customer=user)
    LineItemFactory(cart=cart)
    with django_assert_num_queries(BUDGETS["get"][0] + AUTH_QUERIES):
        response = api_client.get(f"/store/carts/{cart.id}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200


@pytest.mark.django_db
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


@pytest.mark.django_db
@pytest.mark.parametrize("lines", [1, 50])
def test_cart_write_releasing_a_stock_hold_costs_no_more(api_client, django_assert_num_queries, lines):
    """A write releases the cart's reservations of every line and refreshes their stock rows in the
    statement that touches the cart: a cart holding stock for 50 lines costs what an empty one does."""
    world = _world(lines)
    quantities = {item.variant_id: item.quantity for item in world.cart.items.all()}
    catalog_services.stock_reserve(cart_id=world.cart.pk, quantities=quantities, ttl=timedelta(minutes=15))
    with django_assert_num_queries(BUDGETS["update_email"][0] + TEST_SAVEPOINT):
        response = api_client.post(f"/store/carts/{world.cart.pk}", {"email": "ada@example.com"}, format="json")
    assert response.status_code == 200, response.content
    assert not StockReservation.objects.filter(cart_id=world.cart.pk).exists()
    assert set(StockLevel.objects.filter(variant_id__in=quantities).values_list("reserved", flat=True)) == {0}
