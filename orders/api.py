from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from carts.api import EXAMPLE_ADDRESS, EXAMPLE_LINE_ITEM, EXAMPLE_SHIPPING_METHOD, user_id_of
from common.pagination import keyed_pagination
from common.schema import envelope, error_example, error_response
from orders import selectors, services
from orders.models import Order
from orders.serializers import CompleteInputSerializer, OrderSerializer

OrderResponse = envelope("OrderResponse", {"order": OrderSerializer()})

# --- OpenAPI examples: the order placed from carts.api's example cart ------------------------
EXAMPLE_ORDER: dict[str, Any] = {
    "id": "order_01m8v8tx4e8q2w6r0t3y5u7i9o",
    "display_id": 1042,
    "cart_id": "cart_01m8v8trsey36wqgzfsjcx6ttr",
    "status": "pending",
    "payment_status": "authorized",
    "fulfillment_status": "not_fulfilled",
    "email": "ada@example.com",
    "customer_id": None,
    "currency_code": "usd",
    "items": [EXAMPLE_LINE_ITEM | {"id": "item_01m8v8tx4k1b3n5m7q9s2d4f6g"}],
    "shipping_address": EXAMPLE_ADDRESS,
    "billing_address": EXAMPLE_ADDRESS,
    "shipping_method": EXAMPLE_SHIPPING_METHOD,
    "subtotal": 4798,
    "shipping_total": 500,
    "tax_total": 464,
    "total": 5762,
    "amount_authorized": 5762,
    "amount_captured": 0,
    "amount_refunded": 0,
    "shipments": [],
    "refunds": [],
    "created_at": "2026-12-02T11:43:17.502114Z",
}
# The same order later: captured, shipped, delivered, then partly refunded.
EXAMPLE_ORDER_SHIPPED_REFUNDED: dict[str, Any] = EXAMPLE_ORDER | {
    "status": "completed",
    "payment_status": "partially_refunded",
    "fulfillment_status": "delivered",
    "amount_captured": 5762,
    "amount_refunded": 1500,
    "shipments": [
        {
            "carrier": "UPS",
            "tracking_number": "1Z999AA10123456784",
            "tracking_url": None,
            "shipped_at": "2026-12-03T09:12:40.118302Z",
            "delivered_at": "2026-12-05T14:02:11.640981Z",
        }
    ],
    "refunds": [{"amount": 1500, "status": "succeeded", "created_at": "2026-12-06T10:31:05.772410Z"}],
}


def order_response(order: Order, http_status: int = status.HTTP_200_OK) -> Response:
    amounts = selectors.order_amounts(orders=[order])
    return Response({"order": OrderSerializer(order, context={"amounts": amounts}).data}, status=http_status)


class CartCompleteViewSet(viewsets.ViewSet):
    """``POST /store/carts/{id}/complete`` (lives in orders: carts never imports orders)."""

    @extend_schema(
        request=CompleteInputSerializer,
        responses={
            200: OrderResponse,
            201: OrderResponse,
            402: error_response(
                402,
                "`payment_not_authorized`, `payment_requires_action`, `payment_canceled`: the PaymentIntent "
                "is not authorized for the cart's total.",
                examples=[error_example(402, "payment_not_authorized", "The payment has not been authorized.")],
            ),
            409: error_response(
                409,
                "`cart_completing`: another completion of this cart is running; retry in a moment.",
                examples=[error_example(409)],
            ),
            410: error_response(410, "`cart_expired`."),
            503: error_response(503, "`payment_provider_unavailable`: Stripe could not be reached; retry."),
        },
        operation_id="carts_complete",
        summary="Complete the cart: place the order",
        description="After the shopper confirmed the payment session's PaymentIntent, places the order "
        "(201). Repeating the call returns the same order (200), so a client may retry safely.",
        tags=["orders"],
        examples=[
            OpenApiExample(
                "Authorized PaymentIntent",
                value={"payment_intent_id": "pi_3QeXk2Lq7pS1bZ9x0aB4cD5e"},
                request_only=True,
            ),
            OpenApiExample("Order placed", value={"order": EXAMPLE_ORDER}, response_only=True, status_codes=["201"]),
            OpenApiExample(
                "Order already placed", value={"order": EXAMPLE_ORDER}, response_only=True, status_codes=["200"]
            ),
        ],
    )
    def complete(self, request: Request, pk: str) -> Response:
        data = CompleteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order, created = services.order_complete_cart(
            cart_id=pk, user_id=user_id_of(request), payment_intent_id=data.validated_data["payment_intent_id"]
        )
        if created:  # built from what placement holds: no re-read of the rows it just wrote
            return order_response(selectors.order_for_store_just_placed(order=order), status.HTTP_201_CREATED)
        return order_response(selectors.order_get_for_store(order_id=order.id), status.HTTP_200_OK)


class OrderViewSet(viewsets.ViewSet):
    lookup_value_regex = r"[^/]+"
    pagination_class = keyed_pagination("orders")

    def get_permissions(self) -> list[IsAuthenticated]:
        return [IsAuthenticated()] if self.action == "list_mine" else []

    @extend_schema(
        responses=OrderResponse,
        operation_id="orders_retrieve",
        summary="Retrieve an order",
        description="Amounts authorized, captured and refunded come from the payment ledger. A customer's "
        "order is visible to that customer only (404 for anyone else). `shipments` lists what staff "
        "shipped (carrier, tracking number) and `refunds` the money returned, oldest first.",
        tags=["orders"],
        examples=[
            OpenApiExample("Order", value={"order": EXAMPLE_ORDER}, response_only=True, status_codes=["200"]),
            OpenApiExample(
                "Shipped and partly refunded",
                value={"order": EXAMPLE_ORDER_SHIPPED_REFUNDED},
                response_only=True,
                status_codes=["200"],
            ),
        ],
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        return order_response(selectors.order_get_for_customer(order_id=pk, user_id=user_id_of(request)))

    @extend_schema(
        responses=envelope(
            "OrderListResponse",
            {
                "orders": OrderSerializer(many=True),
                "count": serializers.IntegerField(),
                "next": serializers.URLField(allow_null=True),
                "previous": serializers.URLField(allow_null=True),
            },
        ),
        parameters=[
            OpenApiParameter("limit", int, required=False, description="Page size (default 20, at most 100)."),
            OpenApiParameter("offset", int, required=False, description="Orders to skip."),
        ],
        operation_id="customers_me_orders_list",
        summary="List the signed-in customer's orders",
        description="Newest first, paginated with `limit` and `offset`. Needs a bearer token.",
        tags=["customers"],
        examples=[
            OpenApiExample(
                "Orders",
                value={
                    "orders": [EXAMPLE_ORDER | {"customer_id": "cus_01m8v8trwbqr5acem9xkdz0am4"}],
                    "count": 1,
                    "next": None,
                    "previous": None,
                },
                response_only=True,
                status_codes=["200"],
            )
        ],
    )
    def list_mine(self, request: Request) -> Response:
        paginator = self.pagination_class()
        queryset = selectors.order_list_for_customer(user_id=str(request.user.pk))
        page = paginator.paginate_queryset(queryset, request, view=self) or []
        amounts = selectors.order_amounts(orders=page)
        return paginator.get_paginated_response(OrderSerializer(page, many=True, context={"amounts": amounts}).data)
