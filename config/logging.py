"""The one logging setup of the web processes (runserver, gunicorn) and the Celery workers.

``build_logging(fmt=..., level=...)`` returns the ``LOGGING`` dict the settings use; gunicorn
(config/gunicorn.conf.py, ``logconfig_dict``) and Celery (config/celery.py, the
``setup_logging`` signal) load the same dict, so Django's, gunicorn's, Celery's and our own
loggers all end in one handler with one formatter.

Why structlog (as a stdlib ``ProcessorFormatter``) rather than python-json-logger: the ~100
existing ``logger.info("order.placed order_id=%s ...")`` calls stay plain stdlib calls, and
structlog's formatter adds what they lack without touching them: the ids bound for the
request or task (``structlog.contextvars``, carried by common/request_context.py) and, in
JSON, a stable ``event`` name. python-json-logger would format records as JSON too, but
has no context binding of its own: we would write and maintain the contextvars part and a
console renderer ourselves. structlog also gives a readable console renderer for
development from the same processor chain.

``LOG_FORMAT``:

* ``json`` (default unless ``DJANGO_DEBUG=true``): one JSON object per line with ``timestamp``
  (ISO 8601, UTC), ``level``, ``logger``, ``event`` (the message's first word: our messages
  start with an event name such as ``order.placed``; Django's, Celery's and gunicorn's do
  not, filter those on ``logger``), ``message`` (the formatted message)
  and the bound context (``request_id``, ``cart_id``, ``order_id``, ``payment_intent_id``,
  ``stripe_event_id``, ``task_id``, ``task`` ... whichever are known).
* ``console`` (default with ``DJANGO_DEBUG=true``, as the demo runs): ``timestamp [level] message  key=value`` of the bound
  context, no colours (the lines also go to files).

Never card data, client secrets or keys: the messages only carry ids and amounts, and
stripe-python's DEBUG lines (whole request/response bodies) are never emitted.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

FORMATS = ("json", "console")


def event_name(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """``event`` = the message's first word (``order.placed``); ``message`` = the whole formatted message."""
    message = event_dict.get("event")
    if isinstance(message, str):
        event_dict["message"] = message
        event_dict["event"] = message.split(None, 1)[0] if message.strip() else ""
    return event_dict


def _pre_chain() -> list[Any]:
    """What every record goes through, from a stdlib logger or a structlog one."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def formatter(fmt: str) -> dict[str, Any]:
    """The dictConfig entry of the one formatter (``fmt``: json or console)."""
    if fmt not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    if fmt == "json":
        renderers: list[Any] = [
            event_name,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=True),
        ]
    else:
        renderers = [structlog.dev.ConsoleRenderer(colors=False, pad_event_to=0)]
    return {
        "()": structlog.stdlib.ProcessorFormatter,
        "foreign_pre_chain": _pre_chain(),
        "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
    }


def configure_structlog() -> None:
    """``structlog.get_logger()`` loggers (if code uses them) go through the same stdlib handler."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_pre_chain(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _at_least_info(level: str) -> str:
    """``level``, raised to INFO (an unknown name is left for dictConfig to refuse with its message)."""
    value = logging.getLevelNamesMapping().get(level.upper())
    return "INFO" if value is not None and value < logging.INFO else level.upper()


def build_logging(*, fmt: str, level: str) -> dict[str, Any]:
    """The ``LOGGING`` dict: one stream handler on the root logger; every other logger propagates to it."""
    configure_structlog()
    through_root = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": formatter(fmt)},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level.upper()},
        "loggers": {
            # Django's default config gives these their own handlers: route them through the root instead.
            "django": {**through_root, "level": "INFO"},
            "django.server": {**through_root, "level": "INFO"},
            "django.db.backends": {**through_root, "level": "WARNING"},
            # gunicorn's own loggers (config/gunicorn.conf.py loads this dict as logconfig_dict)
            "gunicorn.error": {**through_root, "level": level.upper()},
            "gunicorn.access": {**through_root, "level": "INFO"},
            # Celery's (config/celery.py: the worker does not install its own handlers)
            "celery": {**through_root, "level": level.upper()},
            # stripe-python logs one INFO line per API call and whole request/response bodies (client
            # secrets) at DEBUG: it follows LOG_LEVEL (quiet at WARNING) but never goes below INFO.
            "stripe": {**through_root, "level": _at_least_info(level)},
        },
    }
