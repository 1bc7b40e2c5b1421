"""Celery tasks: take ids, call one service. Enqueued on commit (webhooks.services.webhook_event_enqueue).

Retries: exponential backoff with full jitter (Celery's own ``get_exponential_backoff_interval``,
the function ``retry_backoff`` uses), ``WEBHOOK_RETRY_BACKOFF`` seconds doubled per attempt,
capped at ``WEBHOOK_RETRY_BACKOFF_MAX``, ``WEBHOOK_MAX_RETRIES`` retries after the first
attempt. The settings are read when the task runs, not at import. After the last attempt
the inbox row is ``failed`` (dead letter) and the task ends quietly: the error is on the row.
The service binds the event's ids to the task's log lines once it has claimed the row (the claim
returns it: no read of its own).
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval
from django.conf import settings

from webhooks import handlers, reconciliation, services

logger = logging.getLogger(__name__)


def retry_countdown(*, retries: int) -> float:
    return float(
        get_exponential_backoff_interval(
            factor=settings.WEBHOOK_RETRY_BACKOFF,
            retries=retries,
            maximum=settings.WEBHOOK_RETRY_BACKOFF_MAX,
            full_jitter=settings.WEBHOOK_RETRY_JITTER,
        )
    )


@shared_task(bind=True, name="webhooks.process_event", acks_late=True, max_retries=None, ignore_result=True)
def webhook_event_process_task(self, event_id: str) -> None:  # noqa: ANN001 - Celery's bound task
    max_retries = settings.WEBHOOK_MAX_RETRIES
    retries = self.request.retries
    last_attempt = retries >= max_retries
    countdown = retry_countdown(retries=retries)
    try:
        services.webhook_event_process(event_id=event_id, last_attempt=last_attempt, retry_in=countdown)
    except Exception as exc:
        if last_attempt or isinstance(exc, handlers.PermanentEventError):
            return  # dead-lettered: the row holds the error, staff replay it
        raise self.retry(exc=exc, countdown=countdown, max_retries=max_retries) from exc


@shared_task(name="webhooks.sweep_inbox", ignore_result=True)
def webhook_events_sweep_task() -> int:
    return services.webhook_events_sweep()


@shared_task(name="webhooks.purge_inbox", ignore_result=True)
def webhook_events_purge_task() -> int:
    return services.webhook_events_purge()


@shared_task(name="webhooks.reconcile_payments", ignore_result=True)
def reconcile_payments_task() -> int:
    report = reconciliation.payments_reconcile()
    return len(report.fixes)
