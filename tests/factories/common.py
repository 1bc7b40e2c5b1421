"""Factories for common models (IdempotencyRecord)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import factory
from django.conf import settings
from django.utils import timezone

from common.models import IdempotencyRecord, IdempotencyStatus


class IdempotencyRecordFactory(factory.django.DjangoModelFactory):
    """A completed 201 replay of ``POST /store/carts`` by a guest, unless told otherwise."""

    class Meta:
        model = IdempotencyRecord

    scope = "guest"
    key = factory.Sequence(lambda n: f"key-{n}")
    method = "POST"
    path = "/store/carts"
    request_fingerprint = hashlib.sha256(b"{}").hexdigest()
    status = IdempotencyStatus.COMPLETED
    lock_token = factory.LazyFunction(uuid.uuid4)
    created_at = factory.LazyFunction(timezone.now)
    locked_at = factory.LazyAttribute(lambda o: o.created_at)
    expires_at = factory.LazyAttribute(lambda o: o.created_at + settings.IDEMPOTENCY_KEY_TTL)
    response_status = 201
    response_body = '{"cart":{"id":"cart_stored"}}'
    response_headers = factory.LazyFunction(lambda: {"Content-Type": "application/json"})
    completed_at = factory.LazyAttribute(lambda o: o.created_at + timedelta(milliseconds=50))
