from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from carts import selectors, services
from carts.serializers import (
    CartCreateInputSerializer,
    CartSerializer,
    CartUpdateInputSerializer,
    ItemInputSerializer,
    LineItemQuantityInputSerializer,
    ShippingMethodInputSerializer,
)
from catalog import selectors as catalog_selectors
from catalog.serializers import ShippingOptionQuerySerializer, ShippingOptionSerializer

CartResponse = inline_serializer("CartResponse", {"cart": CartSerializer()})


def user_id_of(request: Request) -> str | None:
    user = request.user
    return user.id if user and user.is_authenticated else None


def cart_response(request: Request, cart_id: str, http_status: int = status.HTTP_200_OK) -> Response:
    cart = selectors.cart_get_for_customer(cart_id=cart_id, user_id=user_id_of(request))
    return Response({"cart": CartSerializer(cart).data}, status=http_status)


class CartViewSet(viewsets.ViewSet):
    lookup_value_regex = r"[^/]+"

    @extend_schema(request=CartCreateInputSerializer, responses={201: CartResponse}, operation_id="carts_create")
    def create(self, request: Request) -> Response:
        data = CartCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        cart = services.cart_create(customer_id=user_id_of(request), **data.validated_data)
        return cart_response(request, cart.id, status.HTTP_201_CREATED)

    @extend_schema(responses=CartResponse, operation_id="carts_retrieve")
    def retrieve(self, request: Request, pk: str) -> Response:
        return cart_response(request, pk)

    @extend_schema(request=CartUpdateInputSerializer, responses=CartResponse, operation_id="carts_update")
    def update(self, request: Request, pk: str) -> Response:
        data = CartUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.cart_update(cart_id=pk, user_id=user_id_of(request), **data.validated_data)
        return cart_response(request, pk)

    @extend_schema(request=ItemInputSerializer, responses=CartResponse, operation_id="carts_line_items_create")
    def line_item_add(self, request: Request, pk: str) -> Response:
        data = ItemInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.cart_line_add(cart_id=pk, user_id=user_id_of(request), **data.validated_data)
        return cart_response(request, pk)

    @extend_schema(request=LineItemQuantityInputSerializer, responses=CartResponse, operation_id="carts_line_items_update")
    def line_item_update(self, request: Request, pk: str, item_id: str) -> Response:
        data = LineItemQuantityInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.cart_line_update(cart_id=pk, user_id=user_id_of(request), item_id=item_id, **data.validated_data)
        return cart_response(request, pk)

    @extend_schema(request=None, responses=CartResponse, operation_id="carts_line_items_delete")
    def line_item_remove(self, request: Request, pk: str, item_id: str) -> Response:
        services.cart_line_remove(cart_id=pk, user_id=user_id_of(request), item_id=item_id)
        return cart_response(request, pk)

    @extend_schema(request=ShippingMethodInputSerializer, responses=CartResponse, operation_id="carts_shipping_methods_create")
    def shipping_method_set(self, request: Request, pk: str) -> Response:
        data = ShippingMethodInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.cart_shipping_method_set(cart_id=pk, user_id=user_id_of(request), **data.validated_data)
        return cart_response(request, pk)


class ShippingOptionViewSet(viewsets.ViewSet):
    @extend_schema(
        parameters=[OpenApiParameter("cart_id", str, required=True)],
        responses=inline_serializer(
            "ShippingOptionListResponse", {"shipping_options": ShippingOptionSerializer(many=True)}
        ),
        operation_id="shipping_options_list",
    )
    def list(self, request: Request) -> Response:
        query = ShippingOptionQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        cart = selectors.cart_get_for_customer(cart_id=query.validated_data["cart_id"], user_id=user_id_of(request))
        options: Any = catalog_selectors.shipping_option_list(region_id=cart.region_id)
        return Response({"shipping_options": ShippingOptionSerializer(options, many=True).data})
