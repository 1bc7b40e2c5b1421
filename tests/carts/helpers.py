"""Small helpers shared by the cart tests (API calls that every test repeats)."""

from __future__ import annotations

from typing import Any

ADDRESS_US = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "address_1": "1 Loom Street",
    "city": "Springfield",
    "postal_code": "12345",
    "country_code": "US",
}

CART_FIELDS = {
    "id", "status", "region_id", "currency_code", "email", "customer_id", "items", "shipping_address",
    "billing_address", "shipping_method", "subtotal", "shipping_total", "tax_total", "total", "payment_session",
    "expires_at", "created_at", "updated_at", "completed_at",
}
LINE_ITEM_FIELDS = {"id", "variant_id", "sku", "title", "quantity", "unit_price", "subtotal", "tax_total", "total"}


def create_cart(client: Any, region_id: str, items: list[tuple[str, int]] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"region_id": region_id, **extra}
    if items:
        body["items"] = [{"variant_id": v, "quantity": q} for v, q in items]
    response = client.post("/store/carts", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["cart"]


def assert_error(response: Any, status: int, code: str, param: str | None = ...) -> dict[str, Any]:  # type: ignore[assignment]
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) >= {"type", "code", "message", "param"}, body
    assert body["error"]["code"] == code, body
    if param is not ...:
        assert body["error"]["param"] == param, body
    return body["error"]
