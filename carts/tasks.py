"""Celery tasks of the carts app. Each takes plain values and calls one service."""

from __future__ import annotations

from celery import shared_task

from carts import services


@shared_task(name="carts.tasks.expire_carts", ignore_result=True)
def expire_carts(batch_size: int = 500) -> int:
    """Periodic (CELERY_BEAT_SCHEDULE "expire-carts"): mark carts past ``expires_at`` expired."""
    return services.carts_expire(batch_size=batch_size)
