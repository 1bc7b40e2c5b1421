"""The Celery app. Tasks take ids, call one service, and are enqueued on commit."""

import logging.config
import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("checkout")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Celery's own loggers go through the one setup of config/logging.py (settings.LOGGING), not Celery's format.
app.conf.worker_hijack_root_logger = False


@signals.setup_logging.connect
def _logging_from_settings(**kwargs: Any) -> None:
    """Connected, so the worker installs no handlers of its own: it logs with the web's LOGGING."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


# --- Request ids into tasks (common/request_context.py) ---------------------------------

_before: dict[str, dict[str, Any]] = {}  # task id -> the context bound before it (an eager task runs in a request)


@signals.before_task_publish.connect
def _carry_log_context(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    from common import request_context

    context = request_context.current()
    if context and headers is not None:
        headers.setdefault(request_context.LOG_CONTEXT_HEADER, context)


@signals.task_prerun.connect
def _bind_log_context(task_id: str = "", task: Any = None, args: Any = None, **kwargs: Any) -> None:
    from common import request_context

    request = task.request
    carried = getattr(request, request_context.LOG_CONTEXT_HEADER, None) or (request.headers or {}).get(
        request_context.LOG_CONTEXT_HEADER
    )
    _before[task_id] = request_context.snapshot()
    request_context.bind(task=task.name, task_id=task_id, **request_context.ids_of(args or ()), **dict(carried or {}))


@signals.task_postrun.connect
def _restore_log_context(task_id: str = "", **kwargs: Any) -> None:
    from common import request_context

    request_context.restore(_before.pop(task_id, {}))
