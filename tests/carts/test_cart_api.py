from __future__ import annotations

import pytest

from tests.factories import ShippingOptionFactory, UserFactory, VariantFactory

pytestmark = pytest.mark.django_db

ADDRESS = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "address_1": "1 Loom Street",
    "city": "Springfield",
    "postal_code": "12345",
    "country_code": "US",
}


def test_cart_create_prices_lines_on_server(api_client, region_usd):
    variant = VariantFactory(prices={"usd": 1450})
    response = api_client.post(
        "/store/carts",
        {
            "region_id": region_usd.id,
            "email": "a@example.com",
            "items": [{"variant_id": variant.id, "quantity": 3, "unit_price": 1, "total": 1}],
            "total": 5,
            "subtotal": 5,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    cart = response.json()["cart"]
    assert cart["id"].startswith("cart_")
    assert cart["items"][0]["unit_price"] == 1450
    assert cart["subtotal"] == 4350
    # 8.75% of 4350 = 380.625 -> 381 (half up)
    assert cart["tax_total"] == 381
    assert cart["total"] == 4350 + 381
    assert cart["status"] == "active"


def test_cart_line_add_merges_same_variant(api_client, region_usd):
    variant = VariantFactory()
    cart_id = api_client.post("/store/carts", {"region_id": region_usd.id}, format="json").json()["cart"]["id"]
    api_client.post(f"/store/carts/{cart_id}/line-items", {"variant_id": variant.id, "quantity": 2}, format="json")
    response = api_client.post(
        f"/store/carts/{cart_id}/line-items", {"variant_id": variant.id, "quantity": 3}, format="json"
    )
    items = response.json()["cart"]["items"]
    assert len(items) == 1
    assert items[0]["quantity"] == 5


def test_cart_line_update_zero_removes(api_client, region_usd):
    variant = VariantFactory()
    cart = api_client.post(
        "/store/carts", {"region_id": region_usd.id, "items": [{"variant_id": variant.id, "quantity": 1}]}, format="json"
    ).json()["cart"]
    item_id = cart["items"][0]["id"]
    response = api_client.post(f"/store/carts/{cart['id']}/line-items/{item_id}", {"quantity": 0}, format="json")
    assert response.json()["cart"]["items"] == []


def test_cart_shipping_and_address(api_client, region_usd):
    option = ShippingOptionFactory(region=region_usd, amount=500)
    variant = VariantFactory(prices={"usd": 1000})
    cart = api_client.post(
        "/store/carts", {"region_id": region_usd.id, "items": [{"variant_id": variant.id, "quantity": 1}]}, format="json"
    ).json()["cart"]
    response = api_client.post(f"/store/carts/{cart['id']}", {"shipping_address": ADDRESS}, format="json")
    assert response.status_code == 200, response.content
    response = api_client.post(f"/store/carts/{cart['id']}/shipping-methods", {"option_id": option.id}, format="json")
    body = response.json()["cart"]
    assert body["shipping_method"] == {"option_id": option.id, "name": "Standard", "amount": 500}
    # 1000 + 500 shipping; tax 87.5 -> 88 on the line, 43.75 -> 44 on shipping
    assert body["tax_total"] == 88 + 44
    assert body["total"] == 1000 + 500 + 132


def test_cart_address_country_must_be_in_region(api_client, region_usd):
    cart = api_client.post("/store/carts", {"region_id": region_usd.id}, format="json").json()["cart"]
    response = api_client.post(
        f"/store/carts/{cart['id']}", {"shipping_address": {**ADDRESS, "country_code": "JP"}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "country_not_in_region"
    assert response.json()["error"]["param"] == "shipping_address.country_code"


def test_customer_cart_hidden_from_others(api_client, region_usd):
    owner = UserFactory()
    other = UserFactory()
    api_client.force_authenticate(owner)
    cart_id = api_client.post("/store/carts", {"region_id": region_usd.id}, format="json").json()["cart"]["id"]
    api_client.force_authenticate(other)
    assert api_client.get(f"/store/carts/{cart_id}").status_code == 404
    api_client.force_authenticate(None)
    assert api_client.get(f"/store/carts/{cart_id}").status_code == 404
