"""The cart API's response shape, for the cart tests; shared helpers are in tests/helpers.py."""

from __future__ import annotations

CART_FIELDS = {
    "id",
    "status",
    "region_id",
    "currency_code",
    "email",
    "customer_id",
    "items",
    "shipping_address",
    "billing_address",
    "shipping_method",
    "subtotal",
    "shipping_total",
    "tax_total",
    "total",
    "payment_session",
    "expires_at",
    "created_at",
    "updated_at",
    "completed_at",
}
LINE_ITEM_FIELDS = {"id", "variant_id", "sku", "title", "quantity", "unit_price", "subtotal", "tax_total", "total"}
