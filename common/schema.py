"""OpenAPI (drf-spectacular): the shared ``ErrorResponse`` component and the schema class.

``StoreAutoSchema`` (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]) documents, on every
``/store/`` operation, the error responses any endpoint can give -- 400 validation or
malformed JSON, 401 bad bearer token, 404 for operations that name an object, 413/415
for operations with a body, 429 when the view is throttled -- all with the one
``ErrorResponse`` body rendered by ``common.errors.exception_handler``. Errors specific
to an operation (409, 410, 422, 402, 502, 503) are declared on the view with
``extend_schema(responses={..., 409: ErrorResponse})``.

Every error response carries an example in that shape (``error_example``), every ``POST``
under ``/store/`` documents the ``Idempotency-Key`` header (docs/idempotency.md), and
``envelope`` names a ``{"<key>": ...}`` response body that drf-spectacular must not turn into
a list on a ``list`` action. The explorer at ``/store/docs`` (Swagger UI) and ``/store/redoc``
render these examples; the views' own examples live next to their ``extend_schema``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers

from common.errors import TYPE_BY_STATUS


class ErrorDetailSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="One of: " + ", ".join(sorted(set(TYPE_BY_STATUS.values()))) + ".")
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

# One realistic body per status, for the responses StoreAutoSchema adds and for
# error_response() without examples of its own: (code, message, param).
_EXAMPLES: dict[int, tuple[str, str, str | None]] = {
    400: ("validation_error", "Ensure this value is greater than or equal to 1.", "quantity"),
    401: ("invalid_credentials", "Invalid token.", None),
    402: ("card_declined", "Your card was declined.", None),
    403: ("permission_denied", "You do not have permission to perform this action.", None),
    404: ("not_found", "No such cart.", None),
    409: ("cart_completing", "This cart is being completed. Retry in a moment.", None),
    410: ("cart_expired", "This cart expired on 2026-12-09T11:39:25Z.", None),
    413: ("request_too_large", "Request body larger than 65536 bytes.", None),
    415: ("unsupported_media_type", 'Unsupported media type "text/plain" in request.', None),
    422: ("variant_not_priced", "Variant SILK-CHARM-IVR has no price in jpy.", "variant_id"),
    429: ("rate_limited", "Too many requests. Please retry later.", None),
    502: ("payment_provider_unavailable", "The payment provider is unavailable. Please retry.", None),
    503: ("payment_provider_unavailable", "The payment provider is unavailable. Please retry.", None),
}


def error_body(status_code: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """``{"error": {type, code, message, param}}`` exactly as ``common.errors.exception_handler`` renders it."""
    return {
        "error": {
            "type": TYPE_BY_STATUS.get(status_code, "api_error"),
            "code": code,
            "message": message,
            "param": param,
        }
    }


def error_example(
    status_code: int, code: str | None = None, message: str | None = None, param: str | None = None
) -> OpenApiExample:
    """An example error body; without ``code`` the status's usual one (``_EXAMPLES``)."""
    if code is None:
        code, default_message, param = _EXAMPLES[status_code]
        message = message or default_message
    return OpenApiExample(
        code,
        value=error_body(status_code, code, message or code.replace("_", " ").capitalize() + ".", param),
        response_only=True,
    )


def error_response(
    status_code: int, description: str | None = None, *, examples: list[OpenApiExample] | None = None
) -> OpenApiResponse:
    """An ``OpenApiResponse`` for ``extend_schema(responses={code: error_response(code)})``.

    ``examples`` (``error_example(...)``) default to the status's usual error.
    """
    if examples is None:
        examples = [error_example(status_code)] if status_code in _EXAMPLES else []
    return OpenApiResponse(
        ErrorResponseSerializer,
        description=description or _DESCRIPTIONS.get(status_code, ""),
        examples=examples,
    )


def envelope(name: str, fields: dict[str, serializers.Field]) -> serializers.Serializer:
    """A named ``{"<key>": ...}`` response body (``inline_serializer``) that stays one object.

    drf-spectacular wraps the response of a ``list`` action in an array unless told the
    serializer is not ``many``; ``GET /store/regions`` answers ``{"regions": [...]}``, not ``[{...}]``.
    """
    serializer = inline_serializer(name, fields)
    extend_schema_serializer(many=False)(type(serializer))
    return serializer


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="1-255 printable ASCII characters, e.g. a UUID. The first response (status and body) is "
    "stored for 48 h and replayed for a retry with the same key and body, with `Idempotent-Replayed: true`. "
    "The same key with another body is `422 idempotency_key_reused`; a retry while the first request still "
    "runs is `409 idempotency_key_in_use`.",
)

_IDEMPOTENCY_ERRORS = {
    409: "`idempotency_key_in_use`: a request with this Idempotency-Key is still running; retry later.",
    422: "`idempotency_key_reused`: this Idempotency-Key was used with a different request.",
}
_IDEMPOTENCY_EXAMPLES = {
    409: error_example(
        409,
        "idempotency_key_in_use",
        "A request with this Idempotency-Key is still being processed. Retry later.",
    ),
    422: error_example(
        422, "idempotency_key_reused", "This Idempotency-Key was already used with a different request."
    ),
}


class StoreAutoSchema(AutoSchema):
    def _takes_idempotency_key(self) -> bool:
        return self.method == "POST" and self.path.startswith("/store/")

    def get_override_parameters(self) -> list[Any]:
        parameters: list[Any] = list(super().get_override_parameters())
        if self._takes_idempotency_key():
            parameters.append(IDEMPOTENCY_KEY)
        return parameters

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
        if self._takes_idempotency_key():
            statuses += [409, 422]
        return statuses

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)  # type: ignore[arg-type]
        if direction != "response" or not self.path.startswith("/store/"):
            return responses
        for status_code in self._default_error_statuses():
            code = str(status_code)
            if code not in responses:
                if self._takes_idempotency_key() and status_code in _IDEMPOTENCY_ERRORS:
                    default = error_response(
                        status_code, _IDEMPOTENCY_ERRORS[status_code], examples=[_IDEMPOTENCY_EXAMPLES[status_code]]
                    )
                else:
                    default = error_response(status_code)
                responses[code] = self._get_response_for_code(default, code, direction=direction)
        if self._takes_idempotency_key():
            self._document_idempotency(responses)
        if "429" in responses:
            responses["429"].setdefault("headers", {})["Retry-After"] = {
                "schema": {"type": "integer"},
                "description": "Seconds to wait before retrying.",
            }
        return dict(sorted(responses.items()))

    def _document_idempotency(self, responses: dict[str, Any]) -> None:
        """The middleware's own 409/422 on every keyed POST, and ``Idempotent-Replayed`` on its 2xx."""
        for status_code, description in _IDEMPOTENCY_ERRORS.items():
            response = responses[str(status_code)]
            current = response.get("description", "")
            if "idempotency_key" not in current:
                response["description"] = f"{current.rstrip('.')}; or {description}" if current else description
            example = _IDEMPOTENCY_EXAMPLES[status_code]
            examples = response["content"]["application/json"].setdefault("examples", {})
            examples.setdefault(
                example.name.replace("_", " ").title().replace(" ", ""),
                {
                    "value": example.value,
                    "summary": example.name,
                },
            )
        for code, response in responses.items():
            if code.startswith("2"):
                response.setdefault("headers", {})["Idempotent-Replayed"] = {
                    "schema": {"type": "string", "enum": ["true"]},
                    "description": "Present on a replay of the stored response for a repeated Idempotency-Key.",
                }
