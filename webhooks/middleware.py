"""The webhook's lean path: ``POST /webhooks/stripe`` answered before the rest of the middleware.

Stripe's deliveries need none of what the store API's stack does (sessions, CSRF, auth,
messages, idempotency keys, DRF's negotiation and rendering): they are signed, and the
answer is a small JSON acknowledgement. ``WebhookAckMiddleware`` sits right after
``RequestIdMiddleware`` (every line still carries the request id, the response still echoes
``X-Request-ID``) and calls ``webhooks.views.stripe_webhook_ack`` directly, doing itself
what the skipped middleware would do for it: the body size limit (413) and the one error
shape, with a database outage answered ``503`` + ``Retry-After`` (Stripe retries a 5xx).
Other methods, and every other path, go through the full stack (405 in the error shape).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_prometheus.middleware import Metrics

from common.errors import DATABASE_ERRORS, ApplicationError, database_unavailable
from webhooks.views import stripe_webhook_ack

WEBHOOK_PATHS = frozenset({"/webhooks/stripe", "/webhooks/stripe/"})
VIEW_NAME = "webhooks-stripe"  # the URL name, as django-prometheus labels the full stack's requests


def _error(error: ApplicationError) -> JsonResponse:
    response = JsonResponse(error.as_dict(), status=error.http_status)
    for name, value in error.headers.items():
        response[name] = value
    return response


class WebhookAckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or request.path_info not in WEBHOOK_PATHS:
            return self.get_response(request)
        started = time.perf_counter()
        response = self._ack(request)
        # the per-view HTTP series django-prometheus's middleware (skipped here) would record
        metrics = Metrics.get_instance()
        metrics.requests_latency_by_view_method.labels(view=VIEW_NAME, method="POST").observe(
            time.perf_counter() - started
        )
        metrics.responses_by_status_view_method.labels(
            status=str(response.status_code), view=VIEW_NAME, method="POST"
        ).inc()
        return response

    def _ack(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            return _error(
                ApplicationError(f"Request body larger than {limit} bytes.", code="request_too_large", http_status=413)
            )
        try:
            response = stripe_webhook_ack(request)
        except ApplicationError as error:
            response = _error(error)
        except DATABASE_ERRORS as exc:
            response = _error(database_unavailable(exc, path=request.path))
        # What CommonMiddleware would add: a keep-alive client knows where the body ends.
        response["Content-Length"] = str(len(response.content))
        return response
