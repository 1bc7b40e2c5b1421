from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.fields import StrictBooleanField, StrictRegexField
from payments.models import PaymentSession


class PaymentSessionDataSerializer(serializers.Serializer):
    client_secret = serializers.CharField()
    payment_intent_id = serializers.CharField()


class PaymentSessionSerializer(serializers.ModelSerializer):
    data = serializers.SerializerMethodField()  # type: ignore[assignment]  # the API's field name (contract)

    class Meta:
        model = PaymentSession
        fields = ["id", "provider_id", "status", "amount", "currency_code", "data"]

    @extend_schema_field(PaymentSessionDataSerializer)
    def get_data(self, session: PaymentSession) -> dict[str, Any]:
        return {"client_secret": session.client_secret, "payment_intent_id": session.payment_intent_id}


class PaymentSessionCreateInputSerializer(serializers.Serializer):
    provider_id = serializers.ChoiceField(choices=["stripe"])
    save_payment_method = StrictBooleanField(
        required=False, default=False, help_text="Keep the card on the signed-in customer's account."
    )
    payment_method_id = StrictRegexField(
        r"^pm_[A-Za-z0-9_]+$",
        max_length=255,
        required=False,
        allow_null=True,
        help_text="A saved card of the signed-in customer (GET /store/customers/me/payment-methods); "
        "confirmed server-side.",
    )
    card_token = StrictRegexField(
        r"^tok_[A-Za-z0-9_]+$",
        max_length=255,
        required=False,
        allow_null=True,
        help_text="A card token from Stripe.js createToken(cardElement). The server attaches it to a Stripe "
        "Customer (the signed-in customer's, else the cart's own), sets it on the PaymentIntent and "
        "confirms: status authorized, requires_action (finish with stripe.confirmCardPayment) or 402.",
    )


class SavedPaymentMethodSerializer(serializers.Serializer):
    id = serializers.CharField()
    brand = serializers.CharField()
    last4 = serializers.CharField()
    exp_month = serializers.IntegerField()
    exp_year = serializers.IntegerField()
