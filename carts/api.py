from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from carts import checkout, selectors, services
from carts.models import Cart
from carts.serializers import (
    CartCreateInputSerializer,
    CartSerializer,
    CartUpdateInputSerializer,
    ItemInputSerializer,
    LineItemQuantityInputSerializer,
    ShippingMethodInputSerializer,
)
from carts.throttling import CartCreateIpThrottle
from catalog import selectors as catalog_selectors
from catalog.serializers import ShippingOptionQuerySerializer, ShippingOptionSerializer
from common.schema import envelope, error_example, error_response
from payments.serializers import PaymentSessionCreateInputSerializer, PaymentSessionSerializer
from payments.throttling import PaymentSessionCartThrottle, PaymentSessionIpThrottle

CartResponse = envelope("CartResponse", {"cart": CartSerializer()})
PaymentSessionResponse = envelope("PaymentSessionResponse", {"payment_session": PaymentSessionSerializer()})

# Errors of every cart write, besides the ones StoreAutoSchema adds (400, 401, 404, 413, 415).
CART_WRITE_ERRORS = {
    409: error_response(409, "`cart_completing`: the cart is being checked out."),
    410: error_response(410, "`cart_expired`: the cart expired and can no longer be changed."),
    422: error_response(422, "`variant_not_priced`: a variant has no price in the cart's currency."),
}

# --- OpenAPI examples (the demo catalog's United States region; amounts in cents) -------------
EXAMPLE_ADDRESS: dict[str, Any] = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company": "",
    "address_1": "1 Loom Street",
    "address_2": "",
    "city": "Springfield",
    "province": "IL",
    "postal_code": "62701",
    "country_code": "US",
    "phone": "+1 217 555 0100",
}
EXAMPLE_LINE_ITEM: dict[str, Any] = {
    "id": "item_01m8v8trsr107cjng7gm64fdgb",
    "variant_id": "variant_01m8v8trgysqmhxx8prpe9wpb9",
    "sku": "COT-LAWN-FLR",
    "title": "Liberty-style Cotton Lawn / Floral",
    "quantity": 2,
    "unit_price": 2399,
    "subtotal": 4798,
    "tax_total": 420,
    "total": 5218,
}
EXAMPLE_SHIPPING_METHOD = {"option_id": "so_01m8v8tre2ax5fss683tsrd0gf", "name": "Standard", "amount": 500}
EXAMPLE_PAYMENT_SESSION: dict[str, Any] = {
    "id": "ps_01m8v8tv2q3k9x7c5b1n0d4f6h",
    "provider_id": "stripe",
    "status": "pending",
    "amount": 5762,
    "currency_code": "usd",
    "data": {
        "client_secret": "pi_3QeXk2Lq7pS1bZ9x0aB4cD5e_secret_Wm1nZx8Yq2Rt4Uv6",
        "payment_intent_id": "pi_3QeXk2Lq7pS1bZ9x0aB4cD5e",
    },
}
_EXAMPLE_CART_NEW: dict[str, Any] = {
    "id": "cart_01m8v8trsey36wqgzfsjcx6ttr",
    "status": "active",
    "region_id": "reg_01m8v8trdwtdb47ec74sdcrj8y",
    "currency_code": "usd",
    "email": "ada@example.com",
    "customer_id": None,
    "items": [EXAMPLE_LINE_ITEM],
    "shipping_address": None,
    "billing_address": None,
    "shipping_method": None,
    "subtotal": 4798,
    "shipping_total": 0,
    "tax_total": 420,
    "total": 5218,
    "payment_session": None,
    "expires_at": "2026-12-09T11:39:25.358081Z",
    "created_at": "2026-12-02T11:39:25.358765Z",
    "updated_at": "2026-12-02T11:39:25.358771Z",
    "completed_at": None,
}
EXAMPLE_CART: dict[str, Any] = {  # addressed, shipping chosen: what checkout starts from
    **_EXAMPLE_CART_NEW,
    "shipping_address": EXAMPLE_ADDRESS,
    "billing_address": EXAMPLE_ADDRESS,
    "shipping_method": EXAMPLE_SHIPPING_METHOD,
    "shipping_total": 500,
    "tax_total": 464,
    "total": 5762,
    "updated_at": "2026-12-02T11:41:02.118250Z",
}


def _cart_example(name: str, cart: dict[str, Any], status_code: int = 200) -> OpenApiExample:
    return OpenApiExample(name, value={"cart": cart}, response_only=True, status_codes=[str(status_code)])


def _request_example(name: str, value: dict[str, Any]) -> OpenApiExample:
    return OpenApiExample(name, value=value, request_only=True)


_CART_EXAMPLE = _cart_example("Cart", EXAMPLE_CART)


def user_id_of(request: Request) -> str | None:
    user = request.user
    return user.id if user and user.is_authenticated else None


def cart_response(cart: Cart, http_status: int = status.HTTP_200_OK) -> Response:
    """The cart as a service or selector returned it (lines and payment session attached: no query)."""
    return Response({"cart": CartSerializer(cart).data}, status=http_status)


class CartViewSet(viewsets.ViewSet):
    lookup_value_regex = r"[^/]+"

    @extend_schema(
        request=CartCreateInputSerializer,
        responses={201: CartResponse, 422: CART_WRITE_ERRORS[422]},
        operation_id="carts_create",
        summary="Create a cart",
        description="Opens a cart in a region (its currency and tax rules), optionally with an email and "
        "first items. With a bearer token the cart belongs to that customer; without one it is a guest cart "
        "reachable by its id alone.",
        tags=["carts"],
        examples=[
            _request_example(
                "Cart with one item",
                {
                    "region_id": "reg_01m8v8trdwtdb47ec74sdcrj8y",
                    "email": "ada@example.com",
                    "items": [{"variant_id": "variant_01m8v8trgysqmhxx8prpe9wpb9", "quantity": 2}],
                },
            ),
            _cart_example("Created cart", _EXAMPLE_CART_NEW, 201),
        ],
    )
    def create(self, request: Request) -> Response:
        data = CartCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        cart = services.cart_create(customer_id=user_id_of(request), **data.validated_data)
        return cart_response(cart, status.HTTP_201_CREATED)

    @extend_schema(
        responses=CartResponse,
        operation_id="carts_retrieve",
        summary="Retrieve a cart",
        description="Totals are computed by the server from the stored lines. A customer's cart is visible "
        "to that customer only (404 for anyone else).",
        tags=["carts"],
        examples=[_CART_EXAMPLE],
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        return cart_response(selectors.cart_get_for_customer(cart_id=pk, user_id=user_id_of(request)))

    @extend_schema(
        request=CartUpdateInputSerializer,
        responses={200: CartResponse, **CART_WRITE_ERRORS},
        operation_id="carts_update",
        summary="Update a cart's email, region or addresses",
        description="Only the fields sent change. Moving to another region reprices the lines in its currency.",
        tags=["carts"],
        examples=[
            _request_example(
                "Addresses",
                {"email": "ada@example.com", "shipping_address": EXAMPLE_ADDRESS, "billing_address": EXAMPLE_ADDRESS},
            ),
            _CART_EXAMPLE,
        ],
    )
    def update(self, request: Request, pk: str) -> Response:
        data = CartUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return cart_response(services.cart_update(cart_id=pk, user_id=user_id_of(request), **data.validated_data))

    @extend_schema(
        request=ItemInputSerializer,
        responses={200: CartResponse, **CART_WRITE_ERRORS},
        operation_id="carts_line_items_create",
        summary="Add a line item",
        description="Adds the quantity to the cart's line of the same variant, or opens a new line.",
        tags=["carts"],
        examples=[
            _request_example("Two metres", {"variant_id": "variant_01m8v8trgysqmhxx8prpe9wpb9", "quantity": 2}),
            _cart_example("Cart with the line", _EXAMPLE_CART_NEW),
        ],
    )
    def line_item_add(self, request: Request, pk: str) -> Response:
        data = ItemInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return cart_response(services.cart_line_add(cart_id=pk, user_id=user_id_of(request), **data.validated_data))

    @extend_schema(
        request=LineItemQuantityInputSerializer,
        responses={200: CartResponse, **CART_WRITE_ERRORS},
        operation_id="carts_line_items_update",
        summary="Change a line item's quantity",
        description="Sets the line's quantity; 0 removes the line.",
        tags=["carts"],
        examples=[_request_example("Two", {"quantity": 2}), _CART_EXAMPLE],
    )
    def line_item_update(self, request: Request, pk: str, item_id: str) -> Response:
        data = LineItemQuantityInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return cart_response(
            services.cart_line_update(cart_id=pk, user_id=user_id_of(request), item_id=item_id, **data.validated_data)
        )

    @extend_schema(
        request=None,
        responses={200: CartResponse, **CART_WRITE_ERRORS},
        operation_id="carts_line_items_delete",
        summary="Remove a line item",
        tags=["carts"],
        examples=[
            _cart_example(
                "Cart without the line", {**_EXAMPLE_CART_NEW, "items": [], "subtotal": 0, "tax_total": 0, "total": 0}
            )
        ],
    )
    def line_item_remove(self, request: Request, pk: str, item_id: str) -> Response:
        return cart_response(services.cart_line_remove(cart_id=pk, user_id=user_id_of(request), item_id=item_id))

    @extend_schema(
        request=ShippingMethodInputSerializer,
        responses={200: CartResponse, **CART_WRITE_ERRORS},
        operation_id="carts_shipping_methods_create",
        summary="Choose the shipping method",
        description="One of `GET /store/shipping-options?cart_id=`; its amount becomes the cart's `shipping_total`.",
        tags=["carts"],
        examples=[_request_example("Standard", {"option_id": "so_01m8v8tre2ax5fss683tsrd0gf"}), _CART_EXAMPLE],
    )
    def shipping_method_set(self, request: Request, pk: str) -> Response:
        data = ShippingMethodInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return cart_response(
            services.cart_shipping_method_set(cart_id=pk, user_id=user_id_of(request), **data.validated_data)
        )

    # --- Payment sessions (issue 3) -----------------------------------------------------
    action_throttles: dict[str, tuple[type, ...]] = {
        "create": (CartCreateIpThrottle,),
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
            400: error_response(
                400,
                "The cart is not payable yet: `cart_empty`, `missing_email`, `missing_shipping_address`, "
                "`missing_shipping_method`; or `validation_error`.",
                examples=[
                    error_example(
                        400,
                        "missing_shipping_address",
                        "Add a shipping address to this cart first.",
                        "shipping_address",
                    ),
                    error_example(400, "validation_error", '"paypal" is not a valid choice.', "provider_id"),
                ],
            ),
            402: error_response(402, "`card_declined`: the saved or tokenized card was declined."),
            409: error_response(
                409,
                "`insufficient_inventory` (param = variant id), `cart_completing`, `payment_session_stale`.",
                examples=[
                    error_example(
                        409,
                        "insufficient_inventory",
                        "Not enough stock for this item.",
                        "variant_01m8v8trgysqmhxx8prpe9wpb9",
                    ),
                    error_example(409, "cart_completing", "This cart is being completed."),
                ],
            ),
            410: error_response(410, "`cart_expired`."),
            502: error_response(502, "`payment_provider_unavailable`: Stripe failed; retry."),
            503: error_response(
                503,
                "`payment_provider_unavailable` (retry) or `checkout_disabled`.",
                examples=[
                    error_example(503),
                    error_example(
                        503, "checkout_disabled", "Checkout is temporarily disabled. Please try again later."
                    ),
                ],
            ),
        },
        operation_id="carts_payment_sessions_create",
        summary="Create or refresh the cart's payment session",
        description="Creates the cart's PaymentIntent (201) or updates the same one to the cart's current "
        "total (200), and holds the cart's stock for RESERVATION_TTL. Confirm `data.client_secret` with "
        "Stripe.js, or send `payment_method_id` / `card_token` to confirm server-side.",
        tags=["payments"],
        examples=[
            _request_example("Stripe", {"provider_id": "stripe"}),
            _request_example(
                "Saved card",
                {"provider_id": "stripe", "payment_method_id": "pm_1QeXk9Lq7pS1bZ9xR2s3T4u5"},
            ),
            OpenApiExample(
                "Created",
                value={"payment_session": EXAMPLE_PAYMENT_SESSION},
                response_only=True,
                status_codes=["201"],
            ),
            OpenApiExample(
                "Updated to the current total",
                value={"payment_session": EXAMPLE_PAYMENT_SESSION},
                response_only=True,
                status_codes=["200"],
            ),
        ],
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
        parameters=[OpenApiParameter("cart_id", str, required=True, description="Options of this cart's region.")],
        responses=envelope("ShippingOptionListResponse", {"shipping_options": ShippingOptionSerializer(many=True)}),
        operation_id="shipping_options_list",
        summary="List shipping options for a cart",
        description="The options of the cart's region, with their amounts in the cart's currency.",
        tags=["carts"],
        examples=[
            OpenApiExample(
                "Shipping options",
                value={
                    "shipping_options": [
                        {"id": "so_01m8v8tre2ax5fss683tsrd0gf", "name": "Standard", "amount": 500},
                        {"id": "so_01m8v8tre7qh829tf89k4dk4s2", "name": "Express", "amount": 1500},
                    ]
                },
                response_only=True,
                status_codes=["200"],
            )
        ],
    )
    def list(self, request: Request) -> Response:
        query = ShippingOptionQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        cart = selectors.cart_get_for_customer(cart_id=query.validated_data["cart_id"], user_id=user_id_of(request))
        options: Any = catalog_selectors.shipping_option_list(region_id=cart.region_id)
        return Response({"shipping_options": ShippingOptionSerializer(options, many=True).data})
