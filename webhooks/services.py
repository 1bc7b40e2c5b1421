"""The webhook inbox: receive (verify + store + enqueue), process (claim + dispatch + settle), replay.

* ``webhook_event_receive`` verifies ``Stripe-Signature`` (payments.gateway, every configured
  secret, ``STRIPE_WEBHOOK_TOLERANCE``), stores the event once (unique Stripe event id; every
  ``client_secret`` redacted, ``payload_redact``) with one group-committed insert and hands its
  processing to a background sender (webhooks/handoff.py). A duplicate delivery is
  acknowledged as one, unread and unqueued.
* ``webhook_event_process`` claims the row (short transaction, row lock), runs the handler
  *outside* any transaction (handlers call Stripe), then settles the row: ``processed``, or
  back to ``received`` for a retry, or ``failed`` (dead letter) on the last attempt.
* ``webhook_event_replay`` (staff) puts a failed or processed event back in the queue.
* ``webhook_events_sweep`` (beat) re-enqueues events that were never picked up (broker down
  at commit time) or whose worker died mid-attempt.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from common import metrics
from common.errors import Conflict, NotFound
from payments import gateway
from webhooks import handlers, handoff
from webhooks.models import WEBHOOK_EVENT_TRANSITIONS, WebhookEvent, WebhookEventStatus

logger = logging.getLogger(__name__)

Status = WebhookEventStatus
MAX_ERROR_CHARS = 4000


class WebhookEventStateError(Conflict):
    code = "webhook_event_state"
    default_message = "The webhook event cannot make this transition."


def webhook_secrets() -> list[str]:
    """The secrets a signature may verify against: the current one first, then rotation extras."""
    secrets = [settings.STRIPE_WEBHOOK_SECRET, *settings.STRIPE_WEBHOOK_SECRETS_EXTRA]
    return [secret.strip() for secret in secrets if secret and secret.strip()]


def _payment_intent_of(obj: dict[str, Any]) -> str:
    if obj.get("object") == "payment_intent":
        return str(obj.get("id") or "")
    value = obj.get("payment_intent")
    if isinstance(value, dict):
        value = value.get("id")
    if value:
        return str(value)
    charge = obj.get("charge")
    if isinstance(charge, dict) and charge.get("payment_intent"):
        return str(charge["payment_intent"])
    return ""


REDACTED = "[redacted]"
# Fields of Stripe objects that let their holder act on the payment (a PaymentIntent's
# ``client_secret`` confirms it from a browser): never stored in the inbox, never shown.
SECRET_FIELDS = frozenset({"client_secret"})
_UNSET: Any = object()


def secrets_redact(value: Any) -> Any:
    """A copy of a decoded JSON value with every ``client_secret`` (at any depth) replaced."""
    if isinstance(value, dict):
        return {key: REDACTED if key in SECRET_FIELDS and item else secrets_redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [secrets_redact(item) for item in value]
    return value


def _may_hold_secrets(payload: str) -> bool:
    """Cheap pre-check: a body that names no secret field (and escapes no character, which could
    spell one) needs no redaction pass."""
    return "\\u" in payload or any(name in payload for name in SECRET_FIELDS)


def payload_redact(*, payload: str, decoded: Any = _UNSET) -> str:
    """The webhook body as stored: the same JSON with client secrets redacted (re-serialised
    only then: without a secret, or not JSON, the body is stored exactly as it came).
    ``decoded``: the body already parsed, when the caller has it."""
    if decoded is _UNSET:
        try:
            decoded = json.loads(payload)
        except ValueError:
            return payload
    redacted = secrets_redact(decoded)
    if redacted == decoded:
        return payload  # nothing secret: keep the bytes exactly as Stripe signed them
    return json.dumps(redacted, separators=(",", ":"))


def _assert_transition(event: WebhookEvent, target: str) -> None:
    if target not in WEBHOOK_EVENT_TRANSITIONS.get(event.status, frozenset()):
        raise WebhookEventStateError(
            f"Webhook event {event.stripe_event_id} is {event.status}; cannot become {target}."
        )


def webhook_event_enqueue(*, event_id: str) -> None:
    """Queue processing once the current transaction commits (immediately without one).

    ``robust``: if the broker is down the error is logged, the event stays ``received``
    and ``webhook_events_sweep`` queues it later; the HTTP answer is unaffected.
    """
    from webhooks.tasks import webhook_event_process_task  # tasks import this module

    def send() -> None:
        queue = settings.WEBHOOK_TASK_QUEUE
        options = {"queue": queue} if queue != webhook_event_process_task.app.conf.task_default_queue else {}
        webhook_event_process_task.apply_async(args=[event_id], **options)

    transaction.on_commit(send, robust=True)


# --- Receive ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookReceipt:
    """What the acknowledgement says: the Stripe event id, and whether this delivery stored it."""

    stripe_event_id: str
    type: str
    created: bool
    id: str | None  # the new inbox row's id; None for a duplicate (the stored row is not read)


def webhook_event_receive(*, payload: bytes, sig_header: str) -> WebhookReceipt:
    """Verify and store one delivery; queue its processing once stored.

    Raises ``WebhookSignatureError`` (400) when no configured secret verifies the signature
    within the tolerance. The row is written by one ``INSERT ... ON CONFLICT DO NOTHING
    RETURNING`` in autocommit, shared with concurrent deliveries of this process (group
    commit, webhooks/handoff.py): when this returns, the row is committed. A duplicate is
    acknowledged without a read: ``created`` False, nothing queued. The processing is handed
    to a background sender (the sweep queues it if that never happens).
    """
    try:
        event = gateway.webhook_event_construct(
            payload=payload,
            sig_header=sig_header,
            secrets=webhook_secrets(),
            tolerance=settings.STRIPE_WEBHOOK_TOLERANCE,
        )
    except gateway.WebhookSignatureError:
        metrics.WEBHOOK_EVENTS_REJECTED.labels("missing_signature" if not sig_header else "invalid_signature").inc()
        raise
    obj = (event.get("data") or {}).get("object") or {}
    created_ts = event.get("created")
    text = payload.decode("utf-8")
    row = WebhookEvent(
        stripe_event_id=str(event["id"])[:255],
        type=str(event.get("type") or "")[:128],
        livemode=bool(event.get("livemode")),
        api_version=str(event.get("api_version") or "")[:64],
        stripe_created_at=datetime.fromtimestamp(created_ts, tz=UTC) if isinstance(created_ts, int) else None,
        object_id=str(obj.get("id") or "")[:255] if isinstance(obj, dict) else "",
        payment_intent_id=_payment_intent_of(obj)[:255] if isinstance(obj, dict) else "",
        # verified and decoded once already; client secrets never reach the inbox (or the admin)
        payload=payload_redact(payload=text, decoded=event) if _may_hold_secrets(text) else text,
    )
    created = handoff.inbox_insert(row=row)
    if created:
        # immediately in autocommit (the webhook view); after the commit inside a transaction
        transaction.on_commit(lambda: handoff.publisher.publish(event_ids=[row.id]), robust=True)
        metrics.WEBHOOK_EVENTS_RECEIVED.labels(row.type).inc()
        logger.info("webhook.received event=%s type=%s id=%s", row.stripe_event_id, row.type, row.id)
    else:
        metrics.WEBHOOK_EVENTS_DUPLICATE.labels(row.type).inc()
        logger.info("webhook.duplicate event=%s type=%s", row.stripe_event_id, row.type)
    return WebhookReceipt(
        stripe_event_id=row.stripe_event_id, type=row.type, created=created, id=row.id if created else None
    )


# --- Process ----------------------------------------------------------------------------


def _lease_expired(row: WebhookEvent, now: datetime) -> bool:
    started = row.processing_started_at
    return started is None or started <= now - settings.WEBHOOK_PROCESSING_LEASE


def _claim(*, event_id: str) -> WebhookEvent | None:
    """received -> processing under a row lock; None when there is nothing to do."""
    now = timezone.now()
    with transaction.atomic():
        row = WebhookEvent.objects.select_for_update().filter(pk=event_id).first()
        if row is None:
            logger.warning("webhook.skip id=%s reason=no_such_row", event_id)
            return None
        if row.status in (Status.PROCESSED, Status.FAILED):
            logger.info("webhook.skip event=%s status=%s", row.stripe_event_id, row.status)
            return None
        if row.status == Status.PROCESSING and not _lease_expired(row, now):
            logger.info("webhook.skip event=%s status=processing (another worker holds it)", row.stripe_event_id)
            return None
        _assert_transition(row, Status.PROCESSING)
        row.status = Status.PROCESSING
        row.attempts += 1
        row.processing_started_at = now
        row.save(update_fields=["status", "attempts", "processing_started_at", "updated_at"])
    return row


def _settle(*, row: WebhookEvent, target: str, error: str = "", retry_in: float | None = None) -> bool:
    """processing -> target, only if this worker's claim (attempt number) still holds."""
    now = timezone.now()
    changes: dict[str, Any] = {
        "status": target,
        "updated_at": now,
        "last_error": error[:MAX_ERROR_CHARS],
        "next_attempt_at": now + timedelta(seconds=retry_in) if retry_in is not None else None,
    }
    if target == Status.PROCESSED:
        changes["processed_at"] = now
    elif target == Status.FAILED:
        changes["failed_at"] = now
    updated = WebhookEvent.objects.filter(pk=row.pk, status=Status.PROCESSING, attempts=row.attempts).update(**changes)
    if not updated:
        logger.warning("webhook.settle_lost event=%s attempt=%s target=%s", row.stripe_event_id, row.attempts, target)
    return bool(updated)


def webhook_event_process(
    *, event_id: str, last_attempt: bool = True, retry_in: float | None = None
) -> WebhookEvent | None:
    """Run the handler of one stored event. Returns the row, or None if there was nothing to do.

    On an error the row records it and goes back to ``received`` (the caller retries in
    ``retry_in`` seconds), or to ``failed`` (dead letter) when ``last_attempt`` or when the
    handler raised ``PermanentEventError``; the error is re-raised either way.
    """
    row = _claim(event_id=event_id)
    if row is None:
        return None
    started = time.monotonic()
    try:
        event = json.loads(row.payload)
        if bool(event.get("livemode")) != settings.STRIPE_LIVE_MODE:
            note = f"ignored: livemode={event.get('livemode')} does not match this deployment"
            logger.warning("webhook.livemode_mismatch event=%s", row.stripe_event_id)
        else:
            note = handlers.dispatch(event=event)
    except Exception as exc:
        duration = time.monotonic() - started
        metrics.WEBHOOK_PROCESSING_SECONDS.labels(row.type).observe(duration)
        metrics.WEBHOOK_EVENT_ATTEMPTS_FAILED.labels(row.type).inc()
        error = f"{type(exc).__name__}: {exc}"
        final = last_attempt or isinstance(exc, handlers.PermanentEventError)
        target = Status.FAILED if final else Status.RECEIVED
        _settle(row=row, target=target, error=error, retry_in=None if final else retry_in)
        if final:
            metrics.WEBHOOK_EVENTS_FAILED.labels(row.type).inc()
            logger.error(
                "webhook.dead_letter event=%s type=%s attempts=%s error=%s",
                row.stripe_event_id,
                row.type,
                row.attempts,
                error[:500],
                exc_info=True,
            )
        else:
            logger.warning(
                "webhook.attempt_failed event=%s type=%s attempt=%s error=%s",
                row.stripe_event_id,
                row.type,
                row.attempts,
                error[:500],
            )
        raise
    duration = time.monotonic() - started
    metrics.WEBHOOK_PROCESSING_SECONDS.labels(row.type).observe(duration)
    if _settle(row=row, target=Status.PROCESSED, error=note or ""):
        metrics.WEBHOOK_EVENTS_PROCESSED.labels(row.type).inc()
        metrics.WEBHOOK_EVENT_LAG_SECONDS.labels(row.type).observe(
            max((timezone.now() - row.received_at).total_seconds(), 0.0)
        )
    logger.info(
        "webhook.processed event=%s type=%s attempt=%s ms=%d note=%s",
        row.stripe_event_id,
        row.type,
        row.attempts,
        duration * 1000,
        note or "",
    )
    row.refresh_from_db()
    return row


# --- Staff and sweeps ---------------------------------------------------------------------


def webhook_event_replay(*, event_id: str, actor_user_id: str = "") -> WebhookEvent:
    """Put a failed (dead-lettered) or processed event back in the queue, with a fresh retry budget.

    Handlers are idempotent, so replaying a processed event is harmless. An event still
    waiting or being processed is refused (409).
    """
    with transaction.atomic():
        row = WebhookEvent.objects.select_for_update().filter(Q(pk=event_id) | Q(stripe_event_id=event_id)).first()
        if row is None:
            raise NotFound("No such webhook event.")
        _assert_transition(row, Status.RECEIVED)
        previous = row.status
        row.status = Status.RECEIVED
        row.replayed_at = timezone.now()
        row.next_attempt_at = None
        row.save(update_fields=["status", "replayed_at", "next_attempt_at", "updated_at"])
        webhook_event_enqueue(event_id=row.id)
    logger.info(
        "webhook.replayed event=%s type=%s from=%s by=%s", row.stripe_event_id, row.type, previous, actor_user_id
    )
    return row


def webhook_events_sweep(*, now: datetime | None = None, limit: int = 500) -> int:
    """Re-enqueue events stuck in ``received`` or ``processing``.

    ``received`` and not touched for ``WEBHOOK_SWEEP_AFTER`` (never queued: the broker was
    down at commit time), or past its scheduled retry by that long (the retry message was
    lost); ``processing`` past ``WEBHOOK_PROCESSING_LEASE`` (the worker died). Safe to run
    any time: a queued duplicate finds the row claimed or processed and does nothing.
    """
    now = now or timezone.now()
    stale = now - settings.WEBHOOK_SWEEP_AFTER
    lease = now - settings.WEBHOOK_PROCESSING_LEASE
    ids = list(
        WebhookEvent.objects.filter(
            Q(status=Status.RECEIVED, next_attempt_at__isnull=True, updated_at__lte=stale)
            | Q(status=Status.RECEIVED, next_attempt_at__lte=stale)
            | Q(status=Status.PROCESSING, processing_started_at__lte=lease)
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for event_id in ids:
        webhook_event_enqueue(event_id=event_id)
    if ids:
        logger.warning("webhook.sweep requeued=%d", len(ids))
    return len(ids)


def webhook_events_purge(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Delete processed events older than ``WEBHOOK_RETENTION`` (dead letters are kept). Returns rows deleted.

    The retention must stay well above Stripe's 3-day redelivery window: the unique event id
    is what makes a redelivery a no-op.
    """
    cutoff = (now or timezone.now()) - settings.WEBHOOK_RETENTION
    total = 0
    while True:
        ids = list(
            WebhookEvent.objects.filter(status=Status.PROCESSED, received_at__lt=cutoff)
            .order_by("received_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            break
        deleted, _ = WebhookEvent.objects.filter(pk__in=ids, status=Status.PROCESSED).delete()
        total += deleted
    if total:
        logger.info("webhook.purged rows=%d older_than=%s", total, cutoff.isoformat())
    return total
