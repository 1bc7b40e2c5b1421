from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from carts import selectors
from carts.calculations import CartTotals
from carts.models import Cart, CartStatus, LineItem
from carts.services import MAX_LINE_QUANTITY, MAX_LINES
from common.fields import StrictCharField, StrictEmailField, StrictIntegerField, StrictRegexField
from payments.serializers import PaymentSessionSerializer


class AddressSerializer(serializers.Serializer):
    first_name = StrictCharField(max_length=100)
    last_name = StrictCharField(max_length=100)
    company = StrictCharField(max_length=200, required=False, allow_blank=True)
    address_1 = StrictCharField(max_length=200)
    address_2 = StrictCharField(max_length=200, required=False, allow_blank=True)
    city = StrictCharField(max_length=100)
    province = StrictCharField(max_length=100, required=False, allow_blank=True)
    postal_code = StrictCharField(max_length=20)
    country_code = StrictRegexField(r"^[A-Z]{2}$", max_length=2, help_text="Upper-case ISO 3166-1 alpha-2, e.g. US.")
    phone = StrictCharField(max_length=40, required=False, allow_blank=True)


class ItemInputSerializer(serializers.Serializer):
    variant_id = StrictCharField(max_length=40)
    quantity = StrictIntegerField(min_value=1, max_value=MAX_LINE_QUANTITY)


class CartCreateInputSerializer(serializers.Serializer):
    region_id = StrictCharField(max_length=40)
    email = StrictEmailField(max_length=254, required=False, allow_blank=True)
    items = ItemInputSerializer(many=True, required=False, max_length=MAX_LINES)  # type: ignore[call-arg]  # ListSerializer's


class CartUpdateInputSerializer(serializers.Serializer):
    email = StrictEmailField(max_length=254, required=False, allow_blank=True)
    region_id = StrictCharField(max_length=40, required=False)
    shipping_address = AddressSerializer(required=False, allow_null=True)
    billing_address = AddressSerializer(required=False, allow_null=True)


class LineItemQuantityInputSerializer(serializers.Serializer):
    quantity = StrictIntegerField(min_value=0, max_value=MAX_LINE_QUANTITY, help_text="0 removes the line.")


class ShippingMethodInputSerializer(serializers.Serializer):
    option_id = StrictCharField(max_length=40)


class ShippingMethodSerializer(serializers.Serializer):
    option_id = serializers.CharField()
    name = serializers.CharField()
    amount = serializers.IntegerField()


# A line as the API shows it, on a cart and on the order placed from it (orders.serializers).
LINE_FIELDS = ["id", "variant_id", "sku", "title", "quantity", "unit_price", "subtotal", "tax_total", "total"]
# What a cart and its order both show of the purchase: lines, addresses, shipping and totals.
CHECKOUT_SUMMARY_FIELDS = [
    "items",
    "shipping_address",
    "billing_address",
    "shipping_method",
    "subtotal",
    "shipping_total",
    "tax_total",
    "total",
]


class CheckoutSummarySerializer(serializers.Serializer):
    """Output fields a cart and its order share. Subclasses define ``get_items`` and ``get_shipping_method``."""

    items = serializers.SerializerMethodField()
    shipping_address = AddressSerializer(allow_null=True)
    billing_address = AddressSerializer(allow_null=True)
    shipping_method = serializers.SerializerMethodField()


class LineItemSerializer(serializers.ModelSerializer):
    subtotal = serializers.SerializerMethodField()
    tax_total = serializers.SerializerMethodField()
    total = serializers.SerializerMethodField()

    class Meta:
        model = LineItem
        fields = LINE_FIELDS

    def _totals(self, item: LineItem) -> Any:
        return self.context["totals"].lines[item.id]

    def get_subtotal(self, item: LineItem) -> int:
        return self._totals(item).subtotal

    def get_tax_total(self, item: LineItem) -> int:
        return self._totals(item).tax_total

    def get_total(self, item: LineItem) -> int:
        return self._totals(item).total


class CartSerializer(CheckoutSummarySerializer, serializers.ModelSerializer):
    """Output only. Totals are computed on the server from the stored lines."""

    status = serializers.SerializerMethodField()
    email = serializers.SerializerMethodField()
    subtotal = serializers.SerializerMethodField()
    shipping_total = serializers.SerializerMethodField()
    tax_total = serializers.SerializerMethodField()
    total = serializers.SerializerMethodField()
    payment_session = serializers.SerializerMethodField()

    class Meta:
        model = Cart
        fields = [
            "id",
            "status",
            "region_id",
            "currency_code",
            "email",
            "customer_id",
            *CHECKOUT_SUMMARY_FIELDS,
            "payment_session",
            "expires_at",
            "created_at",
            "updated_at",
            "completed_at",
        ]

    def _totals(self, cart: Cart) -> CartTotals:
        cache = self.context.setdefault("_totals", {})
        if cart.id not in cache:
            cache[cart.id] = selectors.cart_totals(cart=cart)
        return cache[cart.id]

    @extend_schema_field(serializers.ChoiceField(choices=CartStatus.choices))
    def get_status(self, cart: Cart) -> str:
        return selectors.cart_status(cart=cart)

    @extend_schema_field(serializers.EmailField(allow_null=True))
    def get_email(self, cart: Cart) -> str | None:
        return cart.email or None  # not given yet: null, like the addresses

    @extend_schema_field(LineItemSerializer(many=True))
    def get_items(self, cart: Cart) -> list[dict[str, Any]]:
        return LineItemSerializer(cart.items.all(), many=True, context={"totals": self._totals(cart)}).data  # type: ignore[return-value]  # many=True: a list

    @extend_schema_field(ShippingMethodSerializer(allow_null=True))
    def get_shipping_method(self, cart: Cart) -> dict[str, Any] | None:
        if cart.shipping_option_id is None:
            return None
        return {"option_id": cart.shipping_option_id, "name": cart.shipping_name, "amount": cart.shipping_amount}

    def get_subtotal(self, cart: Cart) -> int:
        return self._totals(cart).subtotal

    def get_shipping_total(self, cart: Cart) -> int:
        return self._totals(cart).shipping_total

    def get_tax_total(self, cart: Cart) -> int:
        return self._totals(cart).tax_total

    def get_total(self, cart: Cart) -> int:
        return self._totals(cart).total

    @extend_schema_field(PaymentSessionSerializer(allow_null=True))
    def get_payment_session(self, cart: Cart) -> dict[str, Any] | None:
        session = selectors.cart_payment_session(cart=cart)
        return PaymentSessionSerializer(session).data if session else None  # type: ignore[return-value]  # its field "data" shadows .data in the stubs
