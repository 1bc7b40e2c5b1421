"""Carts API per API.md: create, retrieve, update, line items, shipping, ownership, server-side pricing."""

from __future__ import annotations

import pytest

from carts.models import Cart
from tests.carts.helpers import CART_FIELDS, LINE_ITEM_FIELDS
from tests.factories import ShippingOptionFactory, UserFactory, VariantFactory
from tests.helpers import ADDRESS_US, assert_error, create_cart

pytestmark = pytest.mark.django_db


def _token(client, user) -> str:
    response = client.post(
        "/store/auth/token", {"email": user.email, "password": "correct-horse-battery"}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()["token"]


# --- create / retrieve -------------------------------------------------------------------


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
            "currency_code": "jpy",
            "status": "completed",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    cart = response.json()["cart"]
    assert set(cart) == CART_FIELDS
    assert set(cart["items"][0]) == LINE_ITEM_FIELDS
    assert cart["id"].startswith("cart_")
    assert cart["items"][0]["id"].startswith("item_")
    assert cart["currency_code"] == "usd"
    assert cart["items"][0]["unit_price"] == 1450
    assert cart["subtotal"] == 4350
    # 8.75% of 4350 = 380.625 -> 381 (half up)
    assert cart["tax_total"] == 381
    assert cart["total"] == 4350 + 381
    assert cart["status"] == "active"
    assert cart["customer_id"] is None
    assert cart["payment_session"] is None
    assert cart["shipping_method"] is None


def test_cart_without_email_shows_null_until_one_is_set(api_client, region_usd):
    cart = api_client.post("/store/carts", {"region_id": region_usd.id}, format="json").json()["cart"]
    assert (cart["email"], cart["shipping_address"], cart["billing_address"]) == (None, None, None)

    updated = api_client.post(f"/store/carts/{cart['id']}", {"email": "ada@example.com"}, format="json")
    assert updated.json()["cart"]["email"] == "ada@example.com"
    cleared = api_client.post(f"/store/carts/{cart['id']}", {"email": ""}, format="json")
    assert cleared.json()["cart"]["email"] is None


def test_cart_create_merges_duplicate_items(api_client, region_usd):
    variant = VariantFactory()
    cart = create_cart(api_client, region_usd.id, [(variant.id, 2), (variant.id, 3)])
    assert [(i["variant_id"], i["quantity"]) for i in cart["items"]] == [(variant.id, 5)]


def test_cart_create_unknown_region_is_404(api_client):
    assert_error(
        api_client.post("/store/carts", {"region_id": "reg_nope"}, format="json"), 404, "not_found", "region_id"
    )


def test_cart_create_unknown_variant_is_404_and_creates_nothing(api_client, region_usd):
    response = api_client.post(
        "/store/carts",
        {"region_id": region_usd.id, "items": [{"variant_id": "variant_nope", "quantity": 1}]},
        format="json",
    )
    assert_error(response, 404, "not_found", "variant_id")
    assert Cart.objects.count() == 0


def test_cart_retrieve(api_client, region_usd):
    cart = create_cart(api_client, region_usd.id)
    response = api_client.get(f"/store/carts/{cart['id']}")
    assert response.status_code == 200
    assert response.json()["cart"]["id"] == cart["id"]
    assert api_client.get(f"/store/carts/{cart['id']}/").status_code == 200  # trailing slash tolerated


def test_cart_retrieve_unknown_is_404(api_client):
    assert_error(api_client.get("/store/carts/cart_01nope"), 404, "not_found")


# --- line items --------------------------------------------------------------------------


def test_cart_line_add_merges_same_variant(api_client, region_usd):
    variant = VariantFactory()
    cart_id = create_cart(api_client, region_usd.id)["id"]
    api_client.post(f"/store/carts/{cart_id}/line-items", {"variant_id": variant.id, "quantity": 2}, format="json")
    response = api_client.post(
        f"/store/carts/{cart_id}/line-items", {"variant_id": variant.id, "quantity": 3}, format="json"
    )
    items = response.json()["cart"]["items"]
    assert len(items) == 1
    assert items[0]["quantity"] == 5


def test_cart_line_add_ignores_client_prices(api_client, region_usd):
    variant = VariantFactory(prices={"usd": 2000})
    cart_id = create_cart(api_client, region_usd.id)["id"]
    response = api_client.post(
        f"/store/carts/{cart_id}/line-items",
        {"variant_id": variant.id, "quantity": 1, "unit_price": 1, "subtotal": 1, "tax_total": 0, "total": 1},
        format="json",
    )
    line = response.json()["cart"]["items"][0]
    assert (line["unit_price"], line["subtotal"], line["tax_total"], line["total"]) == (2000, 2000, 175, 2175)


def test_cart_line_add_merge_over_maximum_is_400(api_client, region_usd):
    variant = VariantFactory()
    cart_id = create_cart(api_client, region_usd.id, [(variant.id, 9_999)])["id"]
    response = api_client.post(
        f"/store/carts/{cart_id}/line-items", {"variant_id": variant.id, "quantity": 2}, format="json"
    )
    assert_error(response, 400, "validation_error", "quantity")


def test_cart_line_add_variant_without_price_in_currency_is_422(api_client, region_usd):
    variant = VariantFactory(prices={"jpy": 2200})
    cart_id = create_cart(api_client, region_usd.id)["id"]
    response = api_client.post(
        f"/store/carts/{cart_id}/line-items", {"variant_id": variant.id, "quantity": 1}, format="json"
    )
    assert_error(response, 422, "variant_not_priced", "variant_id")


def test_cart_line_update_sets_quantity_and_ignores_client_prices(api_client, region_usd):
    variant = VariantFactory(prices={"usd": 1000})
    cart = create_cart(api_client, region_usd.id, [(variant.id, 1)])
    item_id = cart["items"][0]["id"]
    response = api_client.post(
        f"/store/carts/{cart['id']}/line-items/{item_id}", {"quantity": 4, "unit_price": 1, "total": 1}, format="json"
    )
    line = response.json()["cart"]["items"][0]
    assert (line["quantity"], line["unit_price"], line["subtotal"]) == (4, 1000, 4000)


def test_cart_line_update_zero_removes(api_client, region_usd):
    variant = VariantFactory()
    cart = create_cart(api_client, region_usd.id, [(variant.id, 1)])
    item_id = cart["items"][0]["id"]
    response = api_client.post(f"/store/carts/{cart['id']}/line-items/{item_id}", {"quantity": 0}, format="json")
    assert response.json()["cart"]["items"] == []


def test_cart_line_delete_removes(api_client, region_usd):
    keep, drop = VariantFactory(), VariantFactory()
    cart = create_cart(api_client, region_usd.id, [(keep.id, 1), (drop.id, 2)])
    item_id = next(i["id"] for i in cart["items"] if i["variant_id"] == drop.id)
    response = api_client.delete(f"/store/carts/{cart['id']}/line-items/{item_id}")
    assert response.status_code == 200
    assert [i["variant_id"] for i in response.json()["cart"]["items"]] == [keep.id]
    # deleting it again: the line is gone
    assert_error(api_client.delete(f"/store/carts/{cart['id']}/line-items/{item_id}"), 404, "not_found", "item_id")


def test_cart_line_item_of_another_cart_is_404(api_client, region_usd):
    variant = VariantFactory()
    other = create_cart(api_client, region_usd.id, [(variant.id, 1)])
    cart = create_cart(api_client, region_usd.id)
    response = api_client.post(
        f"/store/carts/{cart['id']}/line-items/{other['items'][0]['id']}", {"quantity": 2}, format="json"
    )
    assert_error(response, 404, "not_found", "item_id")


# --- shipping ----------------------------------------------------------------------------


def test_cart_shipping_and_address(api_client, region_usd):
    option = ShippingOptionFactory(region=region_usd, amount=500)
    variant = VariantFactory(prices={"usd": 1000})
    cart = create_cart(api_client, region_usd.id, [(variant.id, 1)])
    response = api_client.post(f"/store/carts/{cart['id']}", {"shipping_address": ADDRESS_US}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["cart"]["shipping_address"]["city"] == "Springfield"
    response = api_client.post(f"/store/carts/{cart['id']}/shipping-methods", {"option_id": option.id}, format="json")
    body = response.json()["cart"]
    assert body["shipping_method"] == {"option_id": option.id, "name": "Standard", "amount": 500}
    # 1000 + 500 shipping; tax 87.5 -> 88 on the line, 43.75 -> 44 on shipping
    assert body["shipping_total"] == 500
    assert body["tax_total"] == 88 + 44
    assert body["total"] == 1000 + 500 + 132


def test_cart_shipping_option_of_another_region_is_404(api_client, region_usd, region_jpy):
    option = ShippingOptionFactory(region=region_jpy)
    cart = create_cart(api_client, region_usd.id)
    response = api_client.post(f"/store/carts/{cart['id']}/shipping-methods", {"option_id": option.id}, format="json")
    assert_error(response, 404, "not_found", "option_id")


def test_shipping_options_list_for_cart(api_client, region_usd, region_jpy):
    cheap = ShippingOptionFactory(region=region_usd, name="Standard", amount=500)
    fast = ShippingOptionFactory(region=region_usd, name="Express", amount=1500)
    ShippingOptionFactory(region=region_usd, name="Retired", amount=100, is_active=False)
    ShippingOptionFactory(region=region_jpy, name="Japan post", amount=600)
    cart = create_cart(api_client, region_usd.id)
    response = api_client.get("/store/shipping-options", {"cart_id": cart["id"]})
    assert response.status_code == 200
    assert response.json() == {
        "shipping_options": [
            {"id": cheap.id, "name": "Standard", "amount": 500},
            {"id": fast.id, "name": "Express", "amount": 1500},
        ]
    }


def test_shipping_options_require_cart_id(api_client):
    assert_error(api_client.get("/store/shipping-options"), 400, "validation_error", "cart_id")
    assert_error(api_client.get("/store/shipping-options", {"cart_id": "cart_nope"}), 404, "not_found")


# --- update: email, addresses, region ------------------------------------------------------


def test_cart_update_email_and_ignores_client_totals(api_client, region_usd):
    variant = VariantFactory(prices={"usd": 1000})
    cart = create_cart(api_client, region_usd.id, [(variant.id, 1)])
    response = api_client.post(
        f"/store/carts/{cart['id']}",
        {
            "email": "new@example.com",
            "total": 1,
            "subtotal": 1,
            "tax_total": 0,
            "customer_id": "cus_x",
            "status": "completed",
        },
        format="json",
    )
    body = response.json()["cart"]
    assert body["email"] == "new@example.com"
    assert (body["subtotal"], body["tax_total"], body["total"]) == (1000, 88, 1088)
    assert body["customer_id"] is None
    assert body["status"] == "active"


def test_cart_address_country_must_be_in_region(api_client, region_usd):
    cart = create_cart(api_client, region_usd.id)
    response = api_client.post(
        f"/store/carts/{cart['id']}", {"shipping_address": {**ADDRESS_US, "country_code": "JP"}}, format="json"
    )
    assert_error(response, 400, "country_not_in_region", "shipping_address.country_code")


@pytest.mark.parametrize(
    ("address", "param"),
    [
        ({k: v for k, v in ADDRESS_US.items() if k != "city"}, "shipping_address.city"),
        ({**ADDRESS_US, "first_name": ""}, "shipping_address.first_name"),
        ({**ADDRESS_US, "country_code": "us"}, "shipping_address.country_code"),
        ({**ADDRESS_US, "country_code": "USA"}, "shipping_address.country_code"),
        ({**ADDRESS_US, "postal_code": 12345}, "shipping_address.postal_code"),
        ({**ADDRESS_US, "postal_code": "1" * 21}, "shipping_address.postal_code"),
        ("1 Loom Street", "shipping_address"),
    ],
)
def test_cart_address_is_validated(api_client, region_usd, address, param):
    cart = create_cart(api_client, region_usd.id)
    assert_error(
        api_client.post(f"/store/carts/{cart['id']}", {"shipping_address": address}, format="json"),
        400,
        "validation_error",
        param,
    )


def test_cart_billing_address_may_be_outside_region_and_can_be_cleared(api_client, region_usd):
    cart = create_cart(api_client, region_usd.id)
    billing = {**ADDRESS_US, "country_code": "JP", "company": "Loom KK"}
    response = api_client.post(f"/store/carts/{cart['id']}", {"billing_address": billing}, format="json")
    assert response.json()["cart"]["billing_address"]["country_code"] == "JP"
    response = api_client.post(f"/store/carts/{cart['id']}", {"billing_address": None}, format="json")
    assert response.json()["cart"]["billing_address"] is None


def test_cart_region_change_reprices_every_line(api_client, region_usd, region_jpy):
    a = VariantFactory(prices={"usd": 1450, "jpy": 2200})
    b = VariantFactory(prices={"usd": 2800, "jpy": 4200})
    option = ShippingOptionFactory(region=region_usd)
    cart = create_cart(api_client, region_usd.id, [(a.id, 3), (b.id, 1)])
    api_client.post(f"/store/carts/{cart['id']}", {"shipping_address": ADDRESS_US}, format="json")
    api_client.post(f"/store/carts/{cart['id']}/shipping-methods", {"option_id": option.id}, format="json")

    response = api_client.post(f"/store/carts/{cart['id']}", {"region_id": region_jpy.id}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()["cart"]
    assert (body["region_id"], body["currency_code"]) == (region_jpy.id, "jpy")
    assert {i["variant_id"]: i["unit_price"] for i in body["items"]} == {a.id: 2200, b.id: 4200}
    # tax-inclusive 10%: 6600 contains 600, 4200 contains 381.8 -> 382
    assert (body["subtotal"], body["tax_total"], body["total"]) == (10800, 982, 10800)
    # a US shipping method and address make no sense in Japan
    assert body["shipping_method"] is None
    assert body["shipping_address"] is None


def test_cart_region_change_with_unpriced_variant_is_422_and_changes_nothing(api_client, region_usd, region_jpy):
    priced = VariantFactory(prices={"usd": 1000, "jpy": 1500})
    unpriced = VariantFactory(prices={"usd": 1000})
    cart = create_cart(api_client, region_usd.id, [(priced.id, 1), (unpriced.id, 1)])
    response = api_client.post(f"/store/carts/{cart['id']}", {"region_id": region_jpy.id}, format="json")
    assert_error(response, 422, "variant_not_priced", "region_id")
    body = api_client.get(f"/store/carts/{cart['id']}").json()["cart"]
    assert (body["region_id"], body["currency_code"]) == (region_usd.id, "usd")
    assert [i["unit_price"] for i in body["items"]] == [1000, 1000]


def test_cart_region_change_and_address_in_one_request(api_client, region_usd, region_jpy):
    cart = create_cart(api_client, region_usd.id)
    address_jp = {**ADDRESS_US, "country_code": "JP", "city": "Kyoto"}
    response = api_client.post(
        f"/store/carts/{cart['id']}", {"region_id": region_jpy.id, "shipping_address": address_jp}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["cart"]["shipping_address"]["city"] == "Kyoto"


def test_cart_region_change_to_unknown_region_is_404(api_client, region_usd):
    cart = create_cart(api_client, region_usd.id)
    assert_error(
        api_client.post(f"/store/carts/{cart['id']}", {"region_id": "reg_nope"}, format="json"),
        404,
        "not_found",
        "region_id",
    )


# --- tax-inclusive and three-decimal carts through the API ----------------------------------


def test_cart_jpy_tax_inclusive_totals(api_client, region_jpy):
    variant = VariantFactory(prices={"jpy": 2200})
    option = ShippingOptionFactory(region=region_jpy, amount=600)
    cart = create_cart(api_client, region_jpy.id, [(variant.id, 3)])
    body = api_client.post(
        f"/store/carts/{cart['id']}/shipping-methods", {"option_id": option.id}, format="json"
    ).json()["cart"]
    line = body["items"][0]
    assert (line["subtotal"], line["tax_total"], line["total"]) == (6600, 600, 6600)
    # shipping ¥600 contains 54.5 -> ¥55
    assert (body["subtotal"], body["shipping_total"], body["tax_total"], body["total"]) == (6600, 600, 655, 7200)


def test_cart_kwd_totals_are_chargeable(api_client, region_kwd):
    """Three-decimal: tax rounds to 10 fils so Stripe can charge the total by card."""
    variant = VariantFactory(prices={"kwd": 4450})
    option = ShippingOptionFactory(region=region_kwd, amount=1500)
    cart = create_cart(api_client, region_kwd.id, [(variant.id, 1)])
    body = api_client.post(
        f"/store/carts/{cart['id']}/shipping-methods", {"option_id": option.id}, format="json"
    ).json()["cart"]
    # line 4.450 KD x 5% = 0.2225 -> 0.220; shipping 1.500 x 5% = 0.075 -> 0.080
    assert body["items"][0]["tax_total"] == 220
    assert (body["subtotal"], body["shipping_total"], body["tax_total"], body["total"]) == (4450, 1500, 300, 6250)
    assert body["total"] % 10 == 0


# --- ownership -----------------------------------------------------------------------------


def test_cart_created_with_token_belongs_to_customer(api_client, region_usd):
    user = UserFactory()
    token = _token(api_client, user)
    response = api_client.post(
        "/store/carts", {"region_id": region_usd.id}, format="json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.json()["cart"]["customer_id"] == user.id
    cart_id = response.json()["cart"]["id"]
    assert api_client.get(f"/store/carts/{cart_id}", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert_error(api_client.get(f"/store/carts/{cart_id}"), 404, "not_found")


def test_customer_cart_hidden_from_others(api_client, region_usd):
    owner = UserFactory()
    other = UserFactory()
    variant = VariantFactory()
    api_client.force_authenticate(owner)
    cart = create_cart(api_client, region_usd.id, [(variant.id, 1)])
    item_id = cart["items"][0]["id"]
    api_client.force_authenticate(other)
    assert_error(api_client.get(f"/store/carts/{cart['id']}"), 404, "not_found")
    # writes by someone else are 404 too (not 403: the cart's existence is not revealed)
    assert_error(
        api_client.post(f"/store/carts/{cart['id']}", {"email": "x@example.com"}, format="json"), 404, "not_found"
    )
    assert_error(
        api_client.post(
            f"/store/carts/{cart['id']}/line-items", {"variant_id": variant.id, "quantity": 1}, format="json"
        ),
        404,
        "not_found",
    )
    assert_error(api_client.delete(f"/store/carts/{cart['id']}/line-items/{item_id}"), 404, "not_found")
    assert_error(api_client.get("/store/shipping-options", {"cart_id": cart["id"]}), 404, "not_found")
    api_client.force_authenticate(None)
    assert_error(api_client.get(f"/store/carts/{cart['id']}"), 404, "not_found")
    api_client.force_authenticate(owner)
    assert api_client.get(f"/store/carts/{cart['id']}").status_code == 200


def test_guest_cart_claimed_by_customer_writing_to_it(api_client, region_usd):
    owner, other = UserFactory(), UserFactory()
    owner_token, other_token = _token(api_client, owner), _token(api_client, other)
    cart = create_cart(api_client, region_usd.id, email="guest@example.com")
    assert cart["customer_id"] is None
    # a guest cart is readable by anyone holding its id, logged in or not
    assert api_client.get(f"/store/carts/{cart['id']}", HTTP_AUTHORIZATION=f"Bearer {other_token}").status_code == 200

    response = api_client.post(
        f"/store/carts/{cart['id']}", {"email": owner.email}, format="json", HTTP_AUTHORIZATION=f"Bearer {owner_token}"
    )
    assert response.status_code == 200
    assert response.json()["cart"]["customer_id"] == owner.id

    assert api_client.get(f"/store/carts/{cart['id']}", HTTP_AUTHORIZATION=f"Bearer {owner_token}").status_code == 200
    assert_error(
        api_client.get(f"/store/carts/{cart['id']}", HTTP_AUTHORIZATION=f"Bearer {other_token}"), 404, "not_found"
    )
    assert_error(api_client.get(f"/store/carts/{cart['id']}"), 404, "not_found")


def test_guest_cart_claimed_by_adding_a_line(api_client, region_usd):
    owner = UserFactory()
    variant = VariantFactory()
    cart = create_cart(api_client, region_usd.id)
    api_client.force_authenticate(owner)
    response = api_client.post(
        f"/store/carts/{cart['id']}/line-items", {"variant_id": variant.id, "quantity": 1}, format="json"
    )
    assert response.json()["cart"]["customer_id"] == owner.id


def test_cart_line_title_fits_even_for_long_catalog_titles(api_client, region_usd):
    from tests.factories import ProductFactory

    variant = VariantFactory(product=ProductFactory(title="P" * 200), title="V" * 200)
    cart = create_cart(api_client, region_usd.id, [(variant.id, 1)])
    assert cart["items"][0]["title"] == ("P" * 200 + " / " + "V" * 200)[:400]
