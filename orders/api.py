from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from carts.api import user_id_of
from common.pagination import keyed_pagination
from orders import selectors, services
from orders.models import Order
from orders.serializers import CompleteInputSerializer, OrderSerializer

OrderResponse = inline_serializer("OrderResponse", {"order": OrderSerializer()})


def order_response(order: Order, http_status: int = status.HTTP_200_OK) -> Response:
    amounts = selectors.order_amounts(orders=[order])
    return Response({"order": OrderSerializer(order, context={"amounts": amounts}).data}, status=http_status)


class CartCompleteViewSet(viewsets.ViewSet):
    """``POST /store/carts/{id}/complete`` (lives in orders: carts never imports orders)."""

    @extend_schema(
        request=CompleteInputSerializer,
        responses={200: OrderResponse, 201: OrderResponse},
        operation_id="carts_complete",
    )
    def complete(self, request: Request, pk: str) -> Response:
        data = CompleteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order, created = services.order_complete_cart(
            cart_id=pk, user_id=user_id_of(request), payment_intent_id=data.validated_data["payment_intent_id"]
        )
        order = selectors.order_get(order_id=order.id)
        return order_response(order, status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class OrderViewSet(viewsets.ViewSet):
    lookup_value_regex = r"[^/]+"
    pagination_class = keyed_pagination("orders")

    def get_permissions(self) -> list[IsAuthenticated]:
        return [IsAuthenticated()] if self.action == "list_mine" else []

    @extend_schema(responses=OrderResponse, operation_id="orders_retrieve")
    def retrieve(self, request: Request, pk: str) -> Response:
        return order_response(selectors.order_get_for_customer(order_id=pk, user_id=user_id_of(request)))

    @extend_schema(
        responses=inline_serializer(
            "OrderListResponse",
            {
                "orders": OrderSerializer(many=True),
                "count": serializers.IntegerField(),
                "next": serializers.URLField(allow_null=True),
                "previous": serializers.URLField(allow_null=True),
            },
        ),
        parameters=[
            OpenApiParameter("limit", int, required=False),
            OpenApiParameter("offset", int, required=False),
        ],
        operation_id="customers_me_orders_list",
    )
    def list_mine(self, request: Request) -> Response:
        paginator = self.pagination_class()
        queryset = selectors.order_list_for_customer(user_id=request.user.id)
        page = paginator.paginate_queryset(queryset, request, view=self) or []
        amounts = selectors.order_amounts(orders=page)
        return paginator.get_paginated_response(OrderSerializer(page, many=True, context={"amounts": amounts}).data)
