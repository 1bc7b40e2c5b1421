"""Test-only urlconf: the real store API plus store endpoints that fail or echo, to exercise the middleware."""

from __future__ import annotations

from django.urls import re_path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import ProviderUnavailable
from config.urls import handler400, handler403, handler404, handler500
from config.urls import urlpatterns as project_urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]

CALLS: dict[str, int] = {"provider_down": 0, "crash": 0, "echo": 0}


class ProviderDownView(APIView):
    """A store POST whose payment provider is unreachable: 503 payment_provider_unavailable."""

    def post(self, request: Request) -> Response:
        CALLS["provider_down"] += 1
        raise ProviderUnavailable()


class CrashView(APIView):
    """A store POST with a bug: an unhandled exception, answered 500 by handler500."""

    def post(self, request: Request) -> Response:
        CALLS["crash"] += 1
        raise RuntimeError("boom")


class EchoView(APIView):
    """Returns what DRF parsed, proving DRF still reads the body the middleware already read."""

    def post(self, request: Request) -> Response:
        CALLS["echo"] += 1
        return Response({"data": request.data, "calls": CALLS["echo"]})


urlpatterns = [
    re_path(r"^store/test/provider-down/?$", ProviderDownView.as_view()),
    re_path(r"^store/test/crash/?$", CrashView.as_view()),
    re_path(r"^store/test/echo/?$", EchoView.as_view()),
    *project_urlpatterns,
]
