"""One error tree and the one DRF exception handler.

Every error response of the store API has the shape
``{"error": {"type", "code", "message", "param"}}`` (see docs/api-checkout.md).
Views and services raise ``ApplicationError`` subclasses; they never build
error responses by hand.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

logger = logging.getLogger(__name__)

TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "payment_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    406: "invalid_request_error",
    409: "conflict_error",
    410: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
}


class ApplicationError(Exception):
    """Base of every typed error. Subclasses set ``code`` and ``http_status``."""

    http_status: int = 400
    code: str = "invalid_request"
    default_message: str = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        param: str | None = None,
        http_status: int | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        self.param = param
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(self.message)

    @property
    def type(self) -> str:
        return TYPE_BY_STATUS.get(self.http_status, "api_error")

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
        }
        body.update(self.extra)
        return {"error": body}


class ValidationError(ApplicationError):
    http_status = 400
    code = "validation_error"
    default_message = "Invalid request."


class NotFound(ApplicationError):
    http_status = 404
    code = "not_found"
    default_message = "Not found."


class Gone(ApplicationError):
    http_status = 410
    code = "gone"


class Unprocessable(ApplicationError):
    http_status = 422
    code = "unprocessable"


class Conflict(ApplicationError):
    http_status = 409
    code = "conflict"


class PaymentError(ApplicationError):
    http_status = 402
    code = "payment_error"


class ServiceUnavailable(ApplicationError):
    http_status = 503
    code = "service_unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    """The database refused or dropped the connection (restart, failover): nothing was decided, retry."""

    code = "service_unavailable"
    default_message = "The service is temporarily unavailable. Please retry."


# Seconds a client is asked to wait after a database outage answer (a restart or failover takes a few).
DATABASE_RETRY_AFTER = 5
# Django's wrappers of psycopg's connection errors (refused, closed, server terminated the session).
DATABASE_ERRORS = (OperationalError, InterfaceError)


def database_unavailable(exc: BaseException, *, path: str = "") -> DatabaseUnavailable:
    """The typed 503 for a database connection error, logged once per request."""
    detail = (str(exc).splitlines() or [""])[0][:200]
    logger.warning("database.unavailable path=%s error=%s detail=%s", path, type(exc).__name__, detail)
    return DatabaseUnavailable(headers={"Retry-After": str(DATABASE_RETRY_AFTER)})


class InsufficientInventory(Conflict):
    code = "insufficient_inventory"
    default_message = "Not enough stock for this item."


class ProviderUnavailable(ApplicationError):
    """The payment provider could not be reached; the request is safe to retry."""

    http_status = 503
    code = "payment_provider_unavailable"
    default_message = "The payment provider is unavailable. Please retry."


def error_response(error: ApplicationError) -> Response:
    response = Response(error.as_dict(), status=error.http_status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def _first_validation_error(detail: Any, path: str = "") -> tuple[str | None, str]:
    """Walk DRF's nested error detail and return (param path, message) of the first error.

    Paths look like ``shipping_address.country_code`` and ``items[1].quantity`` (list
    errors come keyed by index, as dicts, or as lists with empty entries for valid items).
    """
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == "non_field_errors":
                key_path = path
            elif isinstance(key, int) or (isinstance(key, str) and key.isdigit() and path):
                key_path = f"{path}[{key}]"
            else:
                key_path = f"{path}.{key}" if path else str(key)
            return _first_validation_error(value, key_path)
    if isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, (dict, list)):
                nested = f"{path}[{index}]" if isinstance(value, dict) else path
                if value:
                    return _first_validation_error(value, nested)
                continue
            return (path or None), str(value)
    return (path or None), str(detail)


def _from_drf(exc: drf_exceptions.APIException) -> ApplicationError:
    status = exc.status_code
    if isinstance(exc, drf_exceptions.ValidationError):
        param, message = _first_validation_error(exc.detail)
        return ValidationError(message, param=param)
    if isinstance(exc, drf_exceptions.ParseError):
        return ValidationError(str(exc.detail), code="malformed_json" if "JSON" in str(exc.detail) else "parse_error")
    if isinstance(exc, drf_exceptions.AuthenticationFailed):
        return ApplicationError(str(exc.detail), code="invalid_credentials", http_status=401)
    if isinstance(exc, drf_exceptions.NotAuthenticated):
        return ApplicationError(str(exc.detail), code="not_authenticated", http_status=401)
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return ApplicationError(str(exc.detail), code="permission_denied", http_status=403)
    if isinstance(exc, drf_exceptions.NotFound):
        return NotFound()
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return ApplicationError(str(exc.detail), code="method_not_allowed", http_status=405)
    if isinstance(exc, drf_exceptions.NotAcceptable):
        return ApplicationError(str(exc.detail), code="not_acceptable", http_status=406)
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return ApplicationError(str(exc.detail), code="unsupported_media_type", http_status=415)
    if isinstance(exc, drf_exceptions.Throttled):
        wait = int(getattr(exc, "wait", None) or 1)
        return ApplicationError(
            "Too many requests. Please retry later.",
            code="rate_limited",
            http_status=429,
            headers={"Retry-After": str(max(wait, 1))},
        )
    return ApplicationError(str(exc.detail), code=getattr(exc, "default_code", "error"), http_status=status)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF EXCEPTION_HANDLER: render every error in the one JSON shape."""
    if isinstance(exc, Http404):
        error: ApplicationError = NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        error = ApplicationError("Permission denied.", code="permission_denied", http_status=403)
    elif isinstance(exc, ApplicationError):
        error = exc
    elif isinstance(exc, drf_exceptions.APIException):
        error = _from_drf(exc)
    elif isinstance(exc, DATABASE_ERRORS):
        request = context.get("request")
        error = database_unavailable(exc, path=getattr(request, "path", ""))
    else:
        return None  # a real bug: let Django log it and answer 500 via handler500
    response = error_response(error)
    if isinstance(exc, drf_exceptions.APIException):
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            response["WWW-Authenticate"] = auth_header
    return response
