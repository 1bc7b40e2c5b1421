"""Models every app needs. Today: the stored responses of the Idempotency-Key mechanism."""

from __future__ import annotations

from django.db import models


class IdempotencyStatus(models.TextChoices):
    IN_FLIGHT = "in_flight"  # the first request is running (or its process died: see locked_at)
    COMPLETED = "completed"  # its response is stored and replayed


class IdempotencyRecord(models.Model):
    """One ``Idempotency-Key`` of one scope (a customer id, or ``guest``) and the first response to it.

    Written only by ``common.idempotency`` (the middleware and its helpers); see docs/idempotency.md.
    ``lock_token`` identifies the request that owns an in-flight record: finishing or
    discarding it is a compare-and-swap on that token, so a request that lost its record to
    a takeover (after ``IDEMPOTENCY_LOCK_TIMEOUT``) cannot overwrite the new owner's result.
    """

    scope = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=2048)
    request_fingerprint = models.CharField(max_length=64, help_text="SHA-256 (hex) of the raw request body.")
    status = models.CharField(max_length=16, choices=IdempotencyStatus.choices, default=IdempotencyStatus.IN_FLIGHT)
    lock_token = models.UUIDField()
    locked_at = models.DateTimeField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(null=True, blank=True, help_text="The exact (UTF-8) response body.")
    response_headers = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_record_unique_scope_key")]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key}"
