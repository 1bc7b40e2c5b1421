"""Reads of the webhook inbox (staff screens, metrics)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from common.errors import NotFound
from webhooks.models import WebhookEvent, WebhookEventStatus

PENDING_STATUSES = (WebhookEventStatus.RECEIVED, WebhookEventStatus.PROCESSING)


def webhook_event_get(*, event_id: str) -> WebhookEvent:
    """By our id (``whevt_...``) or by Stripe's (``evt_...``)."""
    row = WebhookEvent.objects.filter(Q(pk=event_id) | Q(stripe_event_id=event_id)).first()
    if row is None:
        raise NotFound("No such webhook event.")
    return row


def webhook_events_dead_lettered() -> QuerySet[WebhookEvent]:
    return WebhookEvent.objects.filter(status=WebhookEventStatus.FAILED).order_by("-failed_at", "-received_at")


def webhook_events_for_payment_intent(*, payment_intent_id: str) -> QuerySet[WebhookEvent]:
    return WebhookEvent.objects.filter(payment_intent_id=payment_intent_id).order_by("stripe_created_at", "received_at")


def webhook_inbox_counts() -> dict[str, int]:
    """Rows per status (one query), for the backlog gauge."""
    counts = {status: 0 for status in WebhookEventStatus.values}
    rows = WebhookEvent.objects.values("status").annotate(total=Count("id")).order_by()
    for row in rows:
        counts[row["status"]] = row["total"]
    return counts


def webhook_inbox_oldest_pending_age(*, now: datetime | None = None) -> float:
    """Seconds since the oldest event still waiting for (or in) processing was stored; 0 if none."""
    now = now or timezone.now()
    oldest = (
        WebhookEvent.objects.filter(status__in=PENDING_STATUSES)
        .order_by("received_at")
        .values_list("received_at", flat=True)
        .first()
    )
    return max((now - oldest).total_seconds(), 0.0) if oldest else 0.0
