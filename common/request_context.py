"""The ids every log line of a request or task carries: request id, cart, order, PaymentIntent, Stripe event.

Bound once in ``contextvars`` (structlog's), never formatted into each message; the one
log formatter (config/logging.py) adds them to every line, stdlib loggers included.

* ``RequestIdMiddleware`` (first in ``MIDDLEWARE``): takes the client's or proxy's
  ``X-Request-ID`` when it is 1-200 characters of ``[A-Za-z0-9._-]``, else makes one
  (``req_<ulid>``); binds it as ``request_id``, binds the ids of the URL
  (``/store/carts/<pk>/...``: ``cart_id``, ``/store/orders/<pk>``: ``order_id``) and answers
  with the same ``X-Request-ID`` header.
* ``bind(**ids)``: services or tasks add what they learn (``bind(order_id=order.id)``);
  ``None`` values are skipped.
* Celery (config/celery.py): ``before_task_publish`` copies ``current()`` into the task's
  ``log_context`` header; in the worker ``task_prerun`` binds it (plus ``task``, ``task_id``
  and the prefixed ids among the task's arguments) and ``task_postrun`` restores what was
  bound before (nothing in a worker; an eager task runs inside the web request and must
  leave its ids alone).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import structlog
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse

from common.ids import new_id

REQUEST_ID_HEADER = "X-Request-ID"
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
LOG_CONTEXT_HEADER = "log_context"

# Public id prefixes (common/ids.py) and the context key each is bound as.
ID_KEYS = {
    "cart": "cart_id",
    "order": "order_id",
    "pi": "payment_intent_id",
    "ps": "payment_session_id",
    "whevt": "webhook_event_id",
    "evt": "stripe_event_id",
}
# What travels from a request (or a task) to the tasks it enqueues.
CARRIED = ("request_id", *ID_KEYS.values())


def request_id_from(value: str | None) -> str:
    """The caller's id when valid, else a new one."""
    if value and VALID_REQUEST_ID.match(value):
        return value
    return new_id("req")


def bind(**ids: Any) -> None:
    """Bind ids to every later log line of this request or task."""
    structlog.contextvars.bind_contextvars(**{key: value for key, value in ids.items() if value is not None})


def snapshot() -> dict[str, Any]:
    return structlog.contextvars.get_contextvars()


def restore(context: dict[str, Any]) -> None:
    """Exactly ``context`` bound again (what a task bound is dropped)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**context)


def current() -> dict[str, Any]:
    """The carried ids bound now (what a task enqueued from here inherits)."""
    bound = structlog.contextvars.get_contextvars()
    return {key: bound[key] for key in CARRIED if bound.get(key)}


def ids_of(values: Any) -> dict[str, str]:
    """The prefixed public ids among ``values``, by their context key (``cart_...`` -> cart_id)."""
    found: dict[str, str] = {}
    for value in values:
        if isinstance(value, str) and "_" in value:
            key = ID_KEYS.get(value.split("_", 1)[0])
            if key:
                found.setdefault(key, value)
    return found


def _clear(**kwargs: Any) -> None:
    structlog.contextvars.clear_contextvars()


# Cleared once the response is closed, not when the middleware returns: Django's own
# "django.request" line for a 4xx/5xx is logged after every middleware, and carries the id too.
request_finished.connect(_clear, dispatch_uid="common.request_context.clear")


class RequestIdMiddleware:
    """Binds ``request_id`` (and the URL's ids) for the request; echoes ``X-Request-ID``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        structlog.contextvars.clear_contextvars()
        bind(request_id=request_id)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: dict[str, Any]
    ) -> None:
        bind(**ids_of(view_kwargs.values()))
