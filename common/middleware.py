from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from common.errors import DATABASE_ERRORS, ApplicationError, database_unavailable


class BodySizeLimitMiddleware:
    """Reject request bodies over DATA_UPLOAD_MAX_MEMORY_SIZE with 413 before anything reads them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            error = ApplicationError(
                f"Request body larger than {limit} bytes.", code="request_too_large", http_status=413
            )
            return JsonResponse(error.as_dict(), status=413)
        return self.get_response(request)


class RejectNulMiddleware:
    """NUL characters cannot name anything here (PostgreSQL text cannot hold them): a path
    with one is 404 and a query string with one is 400, before any view passes it to the
    database. (JSON bodies are covered by the serializers' ProhibitNullCharactersValidator.)"""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path_info:
            return _json_error(ApplicationError("No such resource.", code="not_found", http_status=404))
        for key, values in request.GET.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                return _json_error(
                    ApplicationError(
                        "Null characters are not allowed.", code="validation_error", param=key.replace("\x00", "")
                    )
                )
        return self.get_response(request)


def _json_error(error: ApplicationError) -> JsonResponse:
    return JsonResponse(error.as_dict(), status=error.http_status)


class DatabaseUnavailableMiddleware:
    """A database connection error raised by a view outside DRF (whose handler covers the API's
    own views) answers ``503`` with ``Retry-After``, never a 500 page:

    * under ``/store``, ``/webhooks``, ``/health`` and ``/metrics``: ``service_unavailable`` in
      the one JSON error shape (Stripe retries a webhook delivery that got a 5xx, so a 503 from
      the inbox loses nothing);
    * anywhere else (the admin, the storefront's pages): the small HTML page
      ``templates/503.html``, rendered without a request, so no context processor (the signed-in
      user, messages) reaches for the database that just failed.
    """

    API_PATH_PREFIXES = ("/store/", "/webhooks/", "/health/", "/metrics")
    HTML_TEMPLATE = "503.html"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_ERRORS):
            return None
        return database_unavailable_response(request, exception)


def database_unavailable_response(request: HttpRequest, exception: BaseException) -> HttpResponse:
    """The 503 for a database connection error: JSON under the API's paths, the HTML page elsewhere."""
    error = database_unavailable(exception, path=request.path)
    response: HttpResponse
    if request.path_info.startswith(DatabaseUnavailableMiddleware.API_PATH_PREFIXES):
        response = _json_error(error)
    else:
        context = {"message": error.message, "retry_after": error.headers.get("Retry-After", "")}
        response = HttpResponse(
            render_to_string(DatabaseUnavailableMiddleware.HTML_TEMPLATE, context), status=error.http_status
        )
    for name, value in error.headers.items():
        response[name] = value
    return response
