from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from carts.serializers import (
    CHECKOUT_SUMMARY_FIELDS,
    LINE_FIELDS,
    CheckoutSummarySerializer,
    ShippingMethodSerializer,
)
from orders.models import Order, OrderLine
from payments.ledger import LedgerTotals


class CompleteInputSerializer(serializers.Serializer):
    payment_intent_id = serializers.RegexField(r"^pi_[A-Za-z0-9_]+$", max_length=255)


class OrderLineSerializer(serializers.ModelSerializer):
    tax_total = serializers.IntegerField(read_only=True)

    class Meta:
        model = OrderLine
        fields = LINE_FIELDS


class OrderSerializer(CheckoutSummarySerializer, serializers.ModelSerializer):
    """Output only. Amounts come from the ledger: pass ``context={"amounts": {order_id: LedgerTotals}}``."""

    cart_id = serializers.CharField()
    customer_id = serializers.CharField(allow_null=True)
    amount_authorized = serializers.SerializerMethodField()
    amount_captured = serializers.SerializerMethodField()
    amount_refunded = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "id",
            "display_id",
            "cart_id",
            "status",
            "payment_status",
            "fulfillment_status",
            "email",
            "customer_id",
            "currency_code",
            *CHECKOUT_SUMMARY_FIELDS,
            "amount_authorized",
            "amount_captured",
            "amount_refunded",
            "created_at",
        ]

    def _totals(self, order: Order) -> LedgerTotals:
        return self.context["amounts"].get(order.id, LedgerTotals())

    @extend_schema_field(OrderLineSerializer(many=True))
    def get_items(self, order: Order) -> list[dict[str, Any]]:
        return OrderLineSerializer(order.lines.all(), many=True).data

    @extend_schema_field(ShippingMethodSerializer(allow_null=True))
    def get_shipping_method(self, order: Order) -> dict[str, Any] | None:
        if not order.shipping_option_id:
            return None
        return {"option_id": order.shipping_option_id, "name": order.shipping_name, "amount": order.shipping_total}

    def get_amount_authorized(self, order: Order) -> int:
        return self._totals(order).authorized

    def get_amount_captured(self, order: Order) -> int:
        return self._totals(order).captured

    def get_amount_refunded(self, order: Order) -> int:
        return self._totals(order).refunded
