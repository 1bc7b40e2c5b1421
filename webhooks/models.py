"""The webhook inbox: every verified Stripe event, stored once, processed later.

A row is written only after the signature verified (webhooks.services.webhook_event_receive).
``stripe_event_id`` is unique, so a redelivered event is acknowledged without a second row
and without a second processing. Status moves only through the services, along
``WEBHOOK_EVENT_TRANSITIONS``:

    received ──claim──> processing ──ok──> processed
        ^                  │  └──error, attempts left──> received   (Celery retries with backoff)
        │                  └────error, last attempt────> failed     (dead letter)
        └──────────── replay (staff) <── failed / processed
"""

from __future__ import annotations

from django.db import models

from common.ids import PublicIdField


class WebhookEventStatus(models.TextChoices):
    RECEIVED = "received"  # stored, waiting for (another) processing attempt
    PROCESSING = "processing"  # claimed by a worker
    PROCESSED = "processed"  # a handler ran to the end (or the type needs no handling)
    FAILED = "failed"  # dead letter: every attempt failed; staff may replay


WEBHOOK_EVENT_TRANSITIONS: dict[str, frozenset[str]] = {
    WebhookEventStatus.RECEIVED: frozenset({WebhookEventStatus.PROCESSING}),
    WebhookEventStatus.PROCESSING: frozenset(
        {
            WebhookEventStatus.PROCESSED,
            WebhookEventStatus.RECEIVED,
            WebhookEventStatus.FAILED,
            # a worker died mid-attempt and the lease expired: another worker re-claims it
            WebhookEventStatus.PROCESSING,
        }
    ),
    WebhookEventStatus.PROCESSED: frozenset({WebhookEventStatus.RECEIVED}),  # replay
    WebhookEventStatus.FAILED: frozenset({WebhookEventStatus.RECEIVED}),  # replay
}


class WebhookEvent(models.Model):
    id = PublicIdField(prefix="whevt")
    stripe_event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=128, db_index=True)
    livemode = models.BooleanField(default=False)
    api_version = models.CharField(max_length=64, blank=True)
    stripe_created_at = models.DateTimeField(null=True, blank=True, help_text="When Stripe created the event.")
    object_id = models.CharField(max_length=255, blank=True, db_index=True, help_text="data.object.id")
    payment_intent_id = models.CharField(
        max_length=255, blank=True, db_index=True, help_text="The PaymentIntent the object belongs to, when known."
    )
    payload = models.TextField(help_text="The raw request body, exactly as signed by Stripe.")
    status = models.CharField(max_length=16, choices=WebhookEventStatus.choices, default=WebhookEventStatus.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="When the scheduled retry is due.")
    processed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    replayed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at", "id"]
        indexes = [models.Index(fields=["status", "received_at"], name="webhook_event_status_received")]

    def __str__(self) -> str:
        return f"{self.stripe_event_id} {self.type} ({self.status})"
