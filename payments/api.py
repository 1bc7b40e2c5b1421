"""Saved cards of the signed-in customer: ``/store/customers/me/payment-methods[/{id}]``."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from common.schema import envelope, error_response
from payments import selectors, services
from payments.serializers import SavedPaymentMethodSerializer

PROVIDER_ERRORS = {
    502: error_response(502, "`payment_provider_unavailable`: Stripe failed; retry."),
    503: error_response(503, "`payment_provider_unavailable`: Stripe could not be reached; retry."),
}


class PaymentMethodViewSet(viewsets.ViewSet):
    permission_classes = [IsAuthenticated]
    lookup_value_regex = r"[^/]+"

    @extend_schema(
        responses={
            200: envelope("PaymentMethodListResponse", {"payment_methods": SavedPaymentMethodSerializer(many=True)}),
            **PROVIDER_ERRORS,
        },
        operation_id="customers_me_payment_methods_list",
        summary="List the signed-in customer's saved cards",
        description="Cards saved with `save_payment_method: true` at checkout. Pass an `id` as "
        "`payment_method_id` to `POST /store/carts/{id}/payment-sessions` to pay with it. Needs a bearer token.",
        tags=["customers"],
        examples=[
            OpenApiExample(
                "Saved cards",
                value={
                    "payment_methods": [
                        {
                            "id": "pm_1QeXk9Lq7pS1bZ9xR2s3T4u5",
                            "brand": "visa",
                            "last4": "4242",
                            "exp_month": 12,
                            "exp_year": 2034,
                        }
                    ]
                },
                response_only=True,
                status_codes=["200"],
            )
        ],
    )
    def list(self, request: Request) -> Response:
        methods = selectors.payment_method_list_for_user(user_id=str(request.user.pk))
        return Response({"payment_methods": SavedPaymentMethodSerializer(methods, many=True).data})

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                "PaymentMethodDeleteResponse", {"id": serializers.CharField(), "deleted": serializers.BooleanField()}
            ),
            **PROVIDER_ERRORS,
        },
        operation_id="customers_me_payment_methods_delete",
        summary="Delete a saved card",
        description="Detaches the card from the customer's Stripe Customer. 404 unless it is one of their cards.",
        tags=["customers"],
        examples=[
            OpenApiExample(
                "Deleted",
                value={"id": "pm_1QeXk9Lq7pS1bZ9xR2s3T4u5", "deleted": True},
                response_only=True,
                status_codes=["200"],
            )
        ],
    )
    def destroy(self, request: Request, pk: str) -> Response:
        services.payment_method_detach(user_id=str(request.user.pk), payment_method_id=pk)
        return Response({"id": pk, "deleted": True})
