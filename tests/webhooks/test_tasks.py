"""Task wiring: backoff, beat entries, the periodic tasks run their services."""

from __future__ import annotations

import pytest
from django.conf import settings

from webhooks import tasks


def test_retry_countdown_exponential_and_capped(settings):
    settings.WEBHOOK_RETRY_BACKOFF = 5
    settings.WEBHOOK_RETRY_BACKOFF_MAX = 600
    settings.WEBHOOK_RETRY_JITTER = False
    assert [tasks.retry_countdown(retries=n) for n in range(9)] == [5, 10, 20, 40, 80, 160, 320, 600, 600]
    settings.WEBHOOK_RETRY_JITTER = True
    assert all(0 <= tasks.retry_countdown(retries=3) <= 40 for _ in range(50))


def test_beat_schedule_has_reconcile_and_sweep():
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"webhooks.reconcile_payments", "webhooks.sweep_inbox", "webhooks.purge_inbox"} <= schedule
    from config.celery import app

    assert {"webhooks.process_event", "webhooks.reconcile_payments", "webhooks.sweep_inbox"} <= set(app.tasks)


@pytest.mark.django_db
def test_periodic_tasks_run(localstripe):
    assert tasks.webhook_events_sweep_task.apply().get() == 0
    assert tasks.reconcile_payments_task.apply().get() == 0
