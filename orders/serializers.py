from __future__ import annotations

from typing import Any

from django.utils.dateparse import parse_datetime
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


class _JsonDateTimeField(serializers.DateTimeField):
    """A timestamp that arrives as the ISO string PostgreSQL wrote into a JSON annotation."""

    def to_representation(self, value: Any) -> str:
        return super().to_representation(parse_datetime(value) if isinstance(value, str) else value)  # type: ignore[arg-type]  # a datetime once parsed


class ShipmentSerializer(serializers.Serializer):
    """One shipment of the order (``orders.selectors.order_queryset_for_store``: ``shipment_rows``)."""

    carrier = serializers.CharField()
    tracking_number = serializers.CharField()
    tracking_url = serializers.URLField(allow_null=True, help_text="The carrier's tracking page, when recorded.")
    shipped_at = _JsonDateTimeField()
    delivered_at = _JsonDateTimeField(allow_null=True)


class RefundSerializer(serializers.Serializer):
    """Money returned to the shopper (``refund_rows``): pending until Stripe confirms it."""

    amount = serializers.IntegerField(help_text="Minor units of the order's currency.")
    status = serializers.ChoiceField(choices=["pending", "succeeded"])
    created_at = _JsonDateTimeField()


class OrderSerializer(CheckoutSummarySerializer, serializers.ModelSerializer):
    """Output only. Amounts come from the ledger: pass ``context={"amounts": {order_id: LedgerTotals}}``.
    Shipments and refunds are read from ``orders.selectors.order_queryset_for_store``'s annotations."""

    cart_id = serializers.CharField()
    customer_id = serializers.CharField(allow_null=True)
    amount_authorized = serializers.SerializerMethodField()
    amount_captured = serializers.SerializerMethodField()
    amount_refunded = serializers.SerializerMethodField()
    shipments = serializers.SerializerMethodField()
    refunds = serializers.SerializerMethodField()

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
            "shipments",
            "refunds",
            "created_at",
        ]

    def _totals(self, order: Order) -> LedgerTotals:
        return self.context["amounts"].get(order.id, LedgerTotals())

    @extend_schema_field(OrderLineSerializer(many=True))
    def get_items(self, order: Order) -> list[dict[str, Any]]:
        return OrderLineSerializer(order.lines.all(), many=True).data  # type: ignore[return-value]  # many=True: a list

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

    @extend_schema_field(ShipmentSerializer(many=True))
    def get_shipments(self, order: Order) -> list[dict[str, Any]]:
        rows = getattr(order, "shipment_rows", None)  # annotated by order_queryset_for_store
        return ShipmentSerializer(rows or [], many=True).data  # type: ignore[return-value]  # many=True: a list

    @extend_schema_field(RefundSerializer(many=True))
    def get_refunds(self, order: Order) -> list[dict[str, Any]]:
        rows = getattr(order, "refund_rows", None)  # annotated by order_queryset_for_store
        return RefundSerializer(rows or [], many=True).data  # type: ignore[return-value]  # many=True: a list
