from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from payments.models import PaymentSession


class PaymentSessionDataSerializer(serializers.Serializer):
    client_secret = serializers.CharField()
    payment_intent_id = serializers.CharField()


class PaymentSessionSerializer(serializers.ModelSerializer):
    data = serializers.SerializerMethodField()

    class Meta:
        model = PaymentSession
        fields = ["id", "provider_id", "status", "amount", "currency_code", "data"]

    @extend_schema_field(PaymentSessionDataSerializer)
    def get_data(self, session: PaymentSession) -> dict[str, Any]:
        return {"client_secret": session.client_secret, "payment_intent_id": session.payment_intent_id}
