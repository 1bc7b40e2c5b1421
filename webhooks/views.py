"""``POST /webhooks/stripe`` (the inbox door) and ``GET /metrics`` (Prometheus).

The webhook view verifies with ``stripe.WebhookSignature`` (through payments.gateway)
inside our own view rather than mounting dj-stripe's ``ProcessWebhookView``: that view
only serves ``/webhook/<uuid>/`` paths tied to a ``WebhookEndpoint`` row with one secret,
processes synchronously inside the request, and, with ``DEBUG=True``, accepts any secret
sent in an ``X-Djstripe-Webhook-Secret`` header. See docs/checkout-stripe-runbook.md.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import ApplicationError
from common.schema import error_response
from webhooks import metrics, services


class FirstRendererNegotiation(BaseContentNegotiation):
    """Machine clients (Stripe, Prometheus) get JSON errors whatever ``Accept`` says: never a 406."""

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type

WebhookAck = inline_serializer(
    "WebhookAck",
    {"received": serializers.BooleanField(), "id": serializers.CharField(), "duplicate": serializers.BooleanField()},
)


@method_decorator(csrf_exempt, name="dispatch")
class StripeWebhookView(APIView):
    """Stripe's signed events. 200 once durably stored (or already stored); 400 for a bad signature."""

    authentication_classes: list[Any] = []  # the signature is the authentication
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []
    parser_classes: list[Any] = []  # the raw body is verified byte for byte; never parsed here
    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter(
                "Stripe-Signature",
                location=OpenApiParameter.HEADER,
                required=True,
                description="t=<unix time>,v1=<HMAC-SHA256 of '<t>.<raw body>' with the endpoint secret>",
            )
        ],
        responses={
            200: WebhookAck,
            400: error_response(400, "`invalid_signature`: missing, forged, tampered or stale (> 300 s) signature."),
        },
        operation_id="webhooks_stripe",
        tags=["webhooks"],
    )
    def post(self, request: Request) -> Response:
        row, created = services.webhook_event_receive(
            payload=request.body, sig_header=request.headers.get("Stripe-Signature", "")
        )
        return Response({"received": True, "id": row.stripe_event_id, "duplicate": not created})


class MetricsView(APIView):
    """Prometheus exposition. With ``METRICS_TOKEN`` set, scrapers send ``Authorization: Bearer <token>``."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []
    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        token = settings.METRICS_TOKEN
        if token:
            sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(sent.encode(), token.encode()):
                raise ApplicationError("A valid metrics token is required.", code="not_authenticated", http_status=401)
        body, content_type = metrics.exposition(accept=request.headers.get("Accept", ""))
        return HttpResponse(body, content_type=content_type)
