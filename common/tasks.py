"""Periodic housekeeping tasks of the common app (scheduled in settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from common.idempotency import idempotency_records_purge


@shared_task(name="common.tasks.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    """Delete expired Idempotency-Key records; returns how many were deleted."""
    return idempotency_records_purge()
