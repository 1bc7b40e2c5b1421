from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from carts import checkout, selectors, services
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
from common.schema import error_response
from payments.serializers import PaymentSessionCreateInputSerializer, PaymentSessionSerializer
from payments.throttling import PaymentSessionCartThrottle, PaymentSessionIpThrottle

CartResponse = inline_serializer("CartResponse", {"cart": CartSerializer()})
PaymentSessionResponse = inline_serializer("PaymentSessionResponse", {"payment_session": PaymentSessionSerializer()})

# Errors of every cart write, besides the ones StoreAutoSchema adds (400, 401, 404, 413, 415).
CART_WRITE_ERRORS = {
    409: error_response(409, "`cart_completing`: the cart is being checked out."),
    410: error_response(410, "`cart_expired`: the cart expired and can no longer be changed."),
    422: error_response(422, "`variant_not_priced`: a variant has no price in the cart's currency."),
}


def user_id_of(request: Request) -> str | None:
    user = request.user
    return user.id if user and user.is_authenticated else None


def cart_response(request: Request, cart_id: str, http_status: int = status.HTTP_200_OK) -> Response:
    cart = selectors.cart_get_for_customer(cart_id=cart_id, user_id=user_id_of(request))
    return Response({"cart": CartSerializer(cart).data}, status=http_status)


class CartViewSet(viewsets.ViewSet):
    lookup_value_regex = r"[^/]+"

    @extend_schema(
        request=CartCreateInputSerializer,
        responses={201: CartResponse, 422: CART_WRITE_ERRORS[422]},
        operation_id="carts_create",
    )
    def create(self, request: Request) -> Response:
        data = CartCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        cart = services.cart_create(customer_id=user_id_of(request), **data.validated_data)
        return cart_response(request, cart.id, status.HTTP_201_CREATED)

    @extend_schema(responses=CartResponse, operation_id="carts_retrieve")
    def retrieve(self, request: Request, pk: str) -> Response:
        return cart_response(request, pk)

    @extend_schema(request=CartUpdateInputSerializer, responses={200: CartResponse, **CART_WRITE_ERRORS}, operation_id="carts_update")
    def update(self, request: Request, pk: str) -> Response:
        data = CartUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.cart_update(cart_id=pk, user_id=user_id_of(request), **data.validated_data)
        return cart_response(request, pk)

    @extend_schema(request=ItemInputSerializer, responses={200: CartResponse, **CART_WRITE_ERRORS}, operation_id="carts_line_items_create")
    def line_item_add(self, request: Request, pk: str) -> Response:
        data = ItemInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.cart_line_add(cart_id=pk, user_id=user_id_of(request), **data.validated_data)
        return cart_response(request, pk)

    @extend_schema(request=LineItemQuantityInputSerializer, responses={200: CartResponse, **CART_WRITE_ERRORS}, operation_id="carts_line_items_update")
    def line_item_update(self, request: Request, pk: str, item_id: str) -> Response:
        data = LineItemQuantityInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.cart_line_update(cart_id=pk, user_id=user_id_of(request), item_id=item_id, **data.validated_data)
        return cart_response(request, pk)

    @extend_schema(request=None, responses={200: CartResponse, **CART_WRITE_ERRORS}, operation_id="carts_line_items_delete")
    def line_item_remove(self, request: Request, pk: str, item_id: str) -> Response:
        services.cart_line_remove(cart_id=pk, user_id=user_id_of(request), item_id=item_id)
        return cart_response(request, pk)

    @extend_schema(request=ShippingMethodInputSerializer, responses={200: CartResponse, **CART_WRITE_ERRORS}, operation_id="carts_shipping_methods_create")
    def shipping_method_set(self, request: Request, pk: str) -> Response:
        data = ShippingMethodInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.cart_shipping_method_set(cart_id=pk, user_id=user_id_of(request), **data.validated_data)
        return cart_response(request, pk)


    # --- Payment sessions (issue 3) -----------------------------------------------------
    action_throttles: dict[str, tuple[type, ...]] = {
        "payment_session_create": (PaymentSessionCartThrottle, PaymentSessionIpThrottle),
    }

    def get_throttles(self) -> list[Any]:
        classes = self.action_throttles.get(getattr(self, "action", None) or "")
        return [cls() for cls in classes] if classes else super().get_throttles()

    @extend_schema(
        request=PaymentSessionCreateInputSerializer,
        responses={
            200: PaymentSessionResponse,
            201: PaymentSessionResponse,
            402: error_response(402, "`card_declined`: the saved or tokenized card was declined."),
            409: error_response(409, "`insufficient_inventory` (param = variant id), `cart_completing`, `payment_session_stale`."),
            410: error_response(410, "`cart_expired`."),
            502: error_response(502, "`payment_provider_unavailable`: Stripe failed; retry."),
            503: error_response(503, "`payment_provider_unavailable` (retry) or `checkout_disabled`."),
        },
        operation_id="carts_payment_sessions_create",
        description="Creates the cart's PaymentIntent (201) or updates the same one to the cart's current "
        "total (200), and holds the cart's stock for RESERVATION_TTL.",
    )
    def payment_session_create(self, request: Request, pk: str) -> Response:
        data = PaymentSessionCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = checkout.cart_payment_session_create(
            cart_id=pk,
            user_id=user_id_of(request),
            save_payment_method=data.validated_data["save_payment_method"],
            payment_method_id=data.validated_data.get("payment_method_id"),
            card_token=data.validated_data.get("card_token"),
        )
        return Response(
            {"payment_session": PaymentSessionSerializer(result.session).data},
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


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
