from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from common.errors import ApplicationError


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
