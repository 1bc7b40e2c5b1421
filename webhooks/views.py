"""``POST /webhooks/stripe`` (the inbox door) and ``GET /metrics`` (Prometheus).

The webhook view verifies with ``stripe.WebhookSignature`` (through payments.gateway)
inside our own view rather than mounting dj-stripe's ``ProcessWebhookView``: that view
only serves ``/webhook/<uuid>/`` paths tied to a ``WebhookEndpoint`` row with one secret,
processes synchronously inside the request, and, with ``DEBUG=True``, accepts any secret
sent in an ``X-Djstripe-Webhook-Secret`` header. See docs/checkout-stripe-runbook.md.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import ApplicationError
from common.schema import error_example, error_response
from webhooks import metrics, services


class FirstRendererNegotiation(BaseContentNegotiation):
    """Machine clients (Stripe, Prometheus) get JSON errors whatever ``Accept`` says: never a 406."""

    def select_parser(self, request: Request, parsers: Iterable[Any]) -> Any:
        return next(iter(parsers), None)

    def select_renderer(self, request: Request, renderers: Iterable[Any], format_suffix: str | None = None) -> Any:
        first = next(iter(renderers))
        return first, first.media_type


WebhookAck = inline_serializer(
    "WebhookAck",
    {"received": serializers.BooleanField(), "id": serializers.CharField(), "duplicate": serializers.BooleanField()},
)

# What Stripe sends (https://docs.stripe.com/api/events/object), as far as the inbox reads it.
StripeEventRequest = inline_serializer(
    "StripeEvent",
    {
        "id": serializers.CharField(help_text="evt_..., unique: a repeated delivery is acknowledged as a duplicate."),
        "object": serializers.ChoiceField(choices=["event"]),
        "type": serializers.CharField(help_text="e.g. payment_intent.succeeded, charge.refunded."),
        "created": serializers.IntegerField(help_text="Unix time."),
        "api_version": serializers.CharField(),
        "livemode": serializers.BooleanField(),
        "data": inline_serializer(
            "StripeEventData",
            {
                "object": inline_serializer(
                    "StripeEventObject",
                    {
                        "id": serializers.CharField(help_text="pi_..., ch_..., re_..., dp_..."),
                        "object": serializers.CharField(help_text="payment_intent, charge, refund, dispute..."),
                    },
                    help_text="The Stripe object the event is about, with all its fields.",
                )
            },
        ),
    },
)
_EVENT_EXAMPLE = {
    "id": "evt_3QeXk2Lq7pS1bZ9x1fGh2iJk",
    "object": "event",
    "type": "payment_intent.amount_capturable_updated",
    "created": 1796211797,
    "api_version": "2024-06-20",
    "livemode": False,
    "data": {
        "object": {
            "id": "pi_3QeXk2Lq7pS1bZ9x0aB4cD5e",
            "object": "payment_intent",
            "amount": 5762,
            "amount_capturable": 5762,
            "currency": "usd",
            "status": "requires_capture",
            "metadata": {"cart_id": "cart_01m8v8trsey36wqgzfsjcx6ttr"},
        }
    },
}


@method_decorator(csrf_exempt, name="dispatch")
class StripeWebhookView(APIView):
    """Stripe's signed events. 200 once durably stored (or already stored); 400 for a bad signature."""

    authentication_classes: list[Any] = []  # the signature is the authentication
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []
    parser_classes: list[Any] = []  # the raw body is verified byte for byte; never parsed here
    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        request={"application/json": StripeEventRequest},
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
            400: error_response(
                400,
                "`invalid_signature`: missing, forged, tampered or stale (> 300 s) signature.",
                examples=[
                    error_example(400, "invalid_signature", "The webhook signature is missing, invalid or too old.")
                ],
            ),
        },
        operation_id="webhooks_stripe",
        summary="Receive a Stripe event",
        description="For Stripe, not storefronts: the raw body is verified against `Stripe-Signature`, stored "
        "once per event id and processed in the background. 200 as soon as it is stored.",
        tags=["webhooks"],
        examples=[
            OpenApiExample("payment_intent.amount_capturable_updated", value=_EVENT_EXAMPLE, request_only=True),
            OpenApiExample(
                "Stored",
                value={"received": True, "id": "evt_3QeXk2Lq7pS1bZ9x1fGh2iJk", "duplicate": False},
                response_only=True,
                status_codes=["200"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        # Served by stripe_webhook_ack (WebhookAckMiddleware) in the deployed middleware stack;
        # this DRF route documents the endpoint and answers when that middleware is not installed.
        receipt = services.webhook_event_receive(
            payload=request.body, sig_header=request.headers.get("Stripe-Signature", "")
        )
        return Response(ack_body(receipt))


def ack_body(receipt: services.WebhookReceipt) -> dict[str, Any]:
    return {"received": True, "id": receipt.stripe_event_id, "duplicate": not receipt.created}


def stripe_webhook_ack(request: HttpRequest) -> HttpResponse:
    """``POST /webhooks/stripe`` without DRF: verify, store, hand off, 200 (the lean path).

    Errors raise (``ApplicationError``, database errors); ``WebhookAckMiddleware`` renders them.
    """
    receipt = services.webhook_event_receive(
        payload=request.body, sig_header=request.headers.get("Stripe-Signature", "")
    )
    return JsonResponse(ack_body(receipt))


class MetricsView(APIView):
    """Prometheus exposition. With ``METRICS_TOKEN`` set, scrapers send ``Authorization: Bearer <token>``."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []
    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        if not settings.METRICS_ENABLED:
            raise ApplicationError("Not found.", code="not_found", http_status=404)
        token = settings.METRICS_TOKEN
        if token:
            sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(sent.encode(), token.encode()):
                raise ApplicationError("A valid metrics token is required.", code="not_authenticated", http_status=401)
        body, content_type = metrics.exposition(accept=request.headers.get("Accept", ""))
        return HttpResponse(body, content_type=content_type)
