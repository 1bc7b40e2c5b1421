"""OpenAPI (drf-spectacular): the shared ``ErrorResponse`` component and the schema class.

``StoreAutoSchema`` (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]) documents, on every
``/store/`` operation, the error responses any endpoint can give -- 400 validation or
malformed JSON, 401 bad bearer token, 404 for operations that name an object, 413/415
for operations with a body, 429 when the view is throttled -- all with the one
``ErrorResponse`` body rendered by ``common.errors.exception_handler``. Errors specific
to an operation (409, 410, 422, 402, 502, 503) are declared on the view with
``extend_schema(responses={..., 409: ErrorResponse})``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from common.errors import TYPE_BY_STATUS


class ErrorDetailSerializer(serializers.Serializer):
    type = serializers.CharField(
        help_text="One of: " + ", ".join(sorted(set(TYPE_BY_STATUS.values()))) + "."
    )
    code = serializers.CharField(help_text="Machine-readable, e.g. validation_error, not_found, cart_expired.")
    message = serializers.CharField(help_text="Human-readable; may change, do not parse it.")
    param = serializers.CharField(
        allow_null=True, help_text="The request field the error is about (e.g. items[0].quantity), or null."
    )


class ErrorResponseSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


ErrorResponse = ErrorResponseSerializer

_DESCRIPTIONS = {
    400: "Invalid request: `validation_error` (with `param`), `malformed_json`, or an operation-specific code.",
    401: "`invalid_credentials`: the bearer token is unknown or malformed; `not_authenticated`: a token is required.",
    402: "Payment failed, e.g. `card_declined`.",
    403: "`permission_denied`.",
    404: "`not_found`: no such object, or it belongs to another customer.",
    409: "Conflict, e.g. `insufficient_inventory` (param = variant id) or `cart_completing`.",
    410: "`cart_expired`: the cart can no longer be changed.",
    413: "`request_too_large`: the request body is over the size limit.",
    415: "`unsupported_media_type`: send `Content-Type: application/json`.",
    422: "The request is well-formed but cannot be applied, e.g. `variant_not_priced`.",
    429: "`rate_limited`: retry after the number of seconds in `Retry-After`.",
    502: "The payment provider failed.",
    503: "The service or the payment provider is unavailable; retry.",
}

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def error_response(status_code: int, description: str | None = None) -> OpenApiResponse:
    """An ``OpenApiResponse`` for ``extend_schema(responses={code: error_response(code)})``."""
    return OpenApiResponse(ErrorResponseSerializer, description=description or _DESCRIPTIONS.get(status_code, ""))


class StoreAutoSchema(AutoSchema):
    def _default_error_statuses(self) -> list[int]:
        statuses = [400]
        if self.view.get_authenticators():
            statuses.append(401)
        names_an_object = "{" in self.path or self.method in _BODY_METHODS or self.method == "DELETE"
        if names_an_object or self.get_override_parameters():
            statuses.append(404)
        if self.method in _BODY_METHODS:
            statuses += [413, 415]
        if self.view.get_throttles():
            statuses.append(429)
        return statuses

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)  # type: ignore[arg-type]
        if direction != "response" or not self.path.startswith("/store/"):
            return responses
        for status_code in self._default_error_statuses():
            code = str(status_code)
            if code not in responses:
                responses[code] = self._get_response_for_code(error_response(status_code), code, direction=direction)
        if "429" in responses:
            responses["429"].setdefault("headers", {})["Retry-After"] = {
                "schema": {"type": "integer"},
                "description": "Seconds to wait before retrying.",
            }
        return dict(sorted(responses.items()))
