"""Project-wide views: health checks and JSON error pages for non-DRF errors."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import DATABASE_ERRORS, ApplicationError, NotFound, ServiceUnavailable
from common.middleware import database_unavailable_response
from common.schema import error_body, error_response

logger = logging.getLogger(__name__)


def _json_error(error: ApplicationError) -> JsonResponse:
    return JsonResponse(error.as_dict(), status=error.http_status)


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json_error(NotFound("No such resource."))


@csrf_exempt
def api_not_found(request: HttpRequest, *args: object, **kwargs: object) -> JsonResponse:
    """Catch-all for unknown API paths, so they answer JSON even with DEBUG on (Django's debug 404 is HTML)."""
    return handler404(request)


def handler500(request: HttpRequest) -> HttpResponse:
    """Django calls it inside the ``except`` of the exception it could not handle. A database
    connection error raised outside a view (a middleware: the session saved after the view) is an
    outage, not a bug: the same 503 as DatabaseUnavailableMiddleware's."""
    exception = sys.exc_info()[1]
    if isinstance(exception, DATABASE_ERRORS):
        return database_unavailable_response(request, exception)
    return _json_error(ApplicationError("Internal server error.", code="internal_error", http_status=500))


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json_error(ApplicationError("Bad request.", code="bad_request", http_status=400))


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json_error(ApplicationError("Permission denied.", code="permission_denied", http_status=403))


_CHECK = ["ok", "unavailable", "not_configured"]
HealthResponse = inline_serializer(
    "HealthResponse",
    {
        "status": serializers.ChoiceField(choices=["ok"]),
        "checks": inline_serializer(
            "HealthChecks",
            {"database": serializers.ChoiceField(choices=_CHECK), "broker": serializers.ChoiceField(choices=_CHECK)},
            required=False,
            help_text="GET /health/ready only.",
        ),
    },
)
_NOT_READY = error_body(503, "not_ready", "Not ready: broker unavailable.") | {}
_NOT_READY["error"] = _NOT_READY["error"] | {"checks": {"database": "ok", "broker": "unavailable"}}


class LiveView(APIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(
        responses=HealthResponse,
        operation_id="health_live",
        summary="Liveness probe",
        description="200 while the process serves requests; checks nothing else.",
        tags=["health"],
        examples=[OpenApiExample("Live", value={"status": "ok"}, response_only=True, status_codes=["200"])],
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_broker() -> str:
    broker = settings.CELERY_BROKER_URL
    if not broker:
        return "not_configured"
    from kombu import Connection  # local: only the readiness probe needs it

    with Connection(broker, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    return "ok"


class ReadyView(APIView):
    """Ready when the database and (if configured) the Celery broker answer; 503 otherwise.

    The 503 body is the usual error shape with the per-dependency ``checks`` inside ``error``.
    """

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(
        responses={
            200: HealthResponse,
            503: error_response(
                503,
                "`not_ready`: a dependency is unavailable; `error.checks` says which.",
                examples=[OpenApiExample("not_ready", value=_NOT_READY, response_only=True)],
            ),
        },
        operation_id="health_ready",
        summary="Readiness probe",
        description="200 when the database and (if configured) the Celery broker answer; 503 otherwise.",
        tags=["health"],
        examples=[
            OpenApiExample(
                "Ready",
                value={"status": "ok", "checks": {"database": "ok", "broker": "ok"}},
                response_only=True,
                status_codes=["200"],
            )
        ],
    )
    def get(self, request: Request) -> Response:
        checks: dict[str, str] = {}
        for name, check in (("database", _check_database), ("broker", _check_broker)):
            try:
                checks[name] = check()
            except Exception as exc:  # noqa: BLE001 - a probe reports any failure
                logger.warning("health.check_failed check=%s error=%s", name, type(exc).__name__)
                checks[name] = "unavailable"
        failed = sorted(name for name, result in checks.items() if result == "unavailable")
        if failed:
            raise ServiceUnavailable(
                f"Not ready: {', '.join(failed)} unavailable.", code="not_ready", extra={"checks": checks}
            )
        return Response({"status": "ok", "checks": checks})
