"""Webhook inbox figures for the admin analytics dashboard (one SQL aggregate each).

* backlog (now): events waiting for or in processing, the age of the oldest, dead letters;
* over the period (by the day an event was received): events received, processed,
  dead-lettered, and the processing lag (``processed_at - received_at``) of those processed:
  mean and max, and per day.

``webhooks/admin.py`` plugs these into the dashboard (orders never imports webhooks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Max, Min, Q
from django.db.models.functions import TruncDate

from webhooks.models import WebhookEvent, WebhookEventStatus

PENDING = [WebhookEventStatus.RECEIVED, WebhookEventStatus.PROCESSING]


def _lag() -> ExpressionWrapper:
    return ExpressionWrapper(F("processed_at") - F("received_at"), output_field=DurationField())


@dataclass(frozen=True)
class WebhookBacklog:
    pending: int
    oldest_pending_age: timedelta | None
    dead_letters: int


def webhook_backlog(*, now: datetime) -> WebhookBacklog:
    row = WebhookEvent.objects.aggregate(
        pending=Count("pk", filter=Q(status__in=PENDING)),
        oldest=Min("received_at", filter=Q(status__in=PENDING)),
        dead_letters=Count("pk", filter=Q(status=WebhookEventStatus.FAILED)),
    )
    oldest = row["oldest"]
    return WebhookBacklog(
        pending=row["pending"],
        oldest_pending_age=max(now - oldest, timedelta(0)) if oldest else None,
        dead_letters=row["dead_letters"],
    )


@dataclass(frozen=True)
class WebhookPeriod:
    received: int
    processed: int
    failed: int
    lag_avg: timedelta | None
    lag_max: timedelta | None


def webhook_period(*, start: datetime, end: datetime) -> WebhookPeriod:
    processed = Q(status=WebhookEventStatus.PROCESSED)
    row = WebhookEvent.objects.filter(received_at__gte=start, received_at__lt=end).aggregate(
        received=Count("pk"),
        processed=Count("pk", filter=processed),
        failed=Count("pk", filter=Q(status=WebhookEventStatus.FAILED)),
        lag_avg=Avg(_lag(), filter=processed),
        lag_max=Max(_lag(), filter=processed),
    )
    return WebhookPeriod(**row)


@dataclass(frozen=True)
class WebhookDay:
    day: date
    received: int
    failed: int
    lag_avg: timedelta | None


def webhook_by_day(*, start: datetime, end: datetime) -> list[WebhookDay]:
    rows = (
        WebhookEvent.objects.filter(received_at__gte=start, received_at__lt=end)
        .annotate(day=TruncDate("received_at"))
        .values("day")
        .annotate(
            received=Count("pk"),
            failed=Count("pk", filter=Q(status=WebhookEventStatus.FAILED)),
            lag_avg=Avg(_lag(), filter=Q(status=WebhookEventStatus.PROCESSED)),
        )
        .order_by("day")
    )
    return [WebhookDay(**row) for row in rows]
