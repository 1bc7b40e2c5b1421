"""The webhook inbox: receive (verify + store + enqueue), process (claim + dispatch + settle), replay.

* ``webhook_event_receive`` verifies ``Stripe-Signature`` (payments.gateway, every configured
  secret, ``STRIPE_WEBHOOK_TOLERANCE``), stores the event once (unique Stripe event id; every
  ``client_secret`` redacted, ``payload_redact``) and enqueues its processing on commit. A duplicate delivery returns the stored row, unprocessed.
* ``webhook_event_process`` claims the row (one ``UPDATE ... RETURNING``), runs the handler
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
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from common import metrics, request_context
from common.errors import Conflict, NotFound
from payments import gateway
from webhooks import handlers
from webhooks.models import WEBHOOK_EVENT_TRANSITIONS, WebhookEvent, WebhookEventStatus

logger = logging.getLogger(__name__)

Status = WebhookEventStatus
MAX_ERROR_CHARS = 4000
# A message that finds the row's lease held checks again this long after the lease expires.
LEASE_RECHECK_MARGIN = 0.5
# Events received this little before a claim are not coalesced into it (clock skew between machines).
COALESCE_CLOCK_MARGIN = timedelta(seconds=1)


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


def secrets_redact(value: Any) -> Any:
    """A copy of a decoded JSON value with every ``client_secret`` (at any depth) replaced."""
    if isinstance(value, dict):
        return {key: REDACTED if key in SECRET_FIELDS and item else secrets_redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [secrets_redact(item) for item in value]
    return value


def payload_redact(*, payload: str) -> str:
    """The webhook body as stored: the same JSON with client secrets redacted (re-serialised
    only then: without a secret, or not JSON, the body is stored exactly as it came)."""
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


def webhook_event_enqueue(*, event_id: str, countdown: float | None = None) -> None:
    """Queue processing once the current transaction commits (immediately without one), ``countdown``
    seconds later when given.

    ``robust``: if the broker is down the error is logged, the event stays ``received``
    and ``webhook_events_sweep`` queues it later; the HTTP answer is unaffected.
    """
    from webhooks.tasks import webhook_event_process_task  # tasks import this module

    if countdown is not None and webhook_event_process_task.app.conf.task_always_eager:
        return  # run eagerly, "later" would be now, again and again: the sweep comes back for it

    def send() -> None:
        queue = settings.WEBHOOK_TASK_QUEUE
        options: dict[str, Any] = (
            {"queue": queue} if queue != webhook_event_process_task.app.conf.task_default_queue else {}
        )
        if countdown is not None:
            options["countdown"] = countdown
        webhook_event_process_task.apply_async(args=[event_id], **options)

    transaction.on_commit(send, robust=True)


# --- Receive ----------------------------------------------------------------------------


def webhook_event_receive(*, payload: bytes, sig_header: str) -> tuple[WebhookEvent, bool]:
    """Verify and store one delivery. Returns (the inbox row, created now).

    Raises ``WebhookSignatureError`` (400) when no configured secret verifies the
    signature within the tolerance. A duplicate is acknowledged: same row, ``created``
    False, nothing enqueued.
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
    defaults = {
        "type": str(event.get("type") or "")[:128],
        "livemode": bool(event.get("livemode")),
        "api_version": str(event.get("api_version") or "")[:64],
        "stripe_created_at": datetime.fromtimestamp(created_ts, tz=UTC) if isinstance(created_ts, int) else None,
        "object_id": str(obj.get("id") or "")[:255] if isinstance(obj, dict) else "",
        "payment_intent_id": _payment_intent_of(obj)[:255] if isinstance(obj, dict) else "",
        # verified, so it decoded once already; client secrets never reach the inbox (or the admin)
        "payload": payload_redact(payload=payload.decode("utf-8")),
    }
    stripe_event_id = str(event["id"])[:255]
    candidate = WebhookEvent(stripe_event_id=stripe_event_id, **defaults)
    with transaction.atomic():
        # INSERT ... ON CONFLICT DO NOTHING: a concurrent delivery of the same event waits for
        # ours on the unique index, then inserts nothing and reads our row.
        WebhookEvent.objects.bulk_create([candidate], ignore_conflicts=True)
        row = WebhookEvent.objects.get(stripe_event_id=stripe_event_id)
        created = row.pk == candidate.pk
        if created:
            webhook_event_enqueue(event_id=row.id)
    if created:
        metrics.WEBHOOK_EVENTS_RECEIVED.labels(row.type).inc()
        logger.info("webhook.received event=%s type=%s id=%s", row.stripe_event_id, row.type, row.id)
    else:
        metrics.WEBHOOK_EVENTS_DUPLICATE.labels(row.type).inc()
        logger.info("webhook.duplicate event=%s type=%s status=%s", row.stripe_event_id, row.type, row.status)
    return row, created


# --- Process ----------------------------------------------------------------------------


def _lease_expired(row: WebhookEvent, now: datetime) -> bool:
    started = row.processing_started_at
    return started is None or started <= now - settings.WEBHOOK_PROCESSING_LEASE


# The statuses a claim may start from (the transition table's way into "processing"): received, and
# processing itself once the holder's lease expired.
_CLAIMABLE = sorted(status for status, targets in WEBHOOK_EVENT_TRANSITIONS.items() if Status.PROCESSING in targets)


@cache
def _claim_sql() -> str:
    table = WebhookEvent._meta.db_table
    columns = ", ".join(f'"{field.column}"' for field in WebhookEvent._meta.concrete_fields)
    assert _CLAIMABLE == [Status.PROCESSING, Status.RECEIVED], _CLAIMABLE
    return (
        f'UPDATE "{table}" SET "status" = %s, "attempts" = "attempts" + 1, "processing_started_at" = %s, '
        f'"updated_at" = %s WHERE "id" = %s AND ("status" = %s OR ("status" = %s AND '
        f'("processing_started_at" IS NULL OR "processing_started_at" <= %s))) RETURNING {columns}'
    )


def _claim(*, event_id: str) -> WebhookEvent | None:
    """received (or processing past its lease) -> processing in one ``UPDATE ... RETURNING``; None
    when there is nothing to do. Two claims of one row serialise on its row lock: the second one's
    condition no longer holds once the first committed, so it updates nothing."""
    now = timezone.now()
    lease_cutoff = now - settings.WEBHOOK_PROCESSING_LEASE
    params = [Status.PROCESSING, now, now, event_id, Status.RECEIVED, Status.PROCESSING, lease_cutoff]
    claimed = list(WebhookEvent.objects.raw(_claim_sql(), params))
    if claimed:
        return claimed[0]
    # Nothing claimed (the rare path: a duplicate message): find out why, for the log and the re-check.
    row = WebhookEvent.objects.filter(pk=event_id).only("stripe_event_id", "status", "processing_started_at").first()
    if row is None:
        logger.warning("webhook.skip id=%s reason=no_such_row", event_id)
    elif row.status == Status.PROCESSING and row.processing_started_at is not None:
        # Another worker holds it, or held it and died: a child process killed under the task
        # requeues its message at once, long before the lease expires. Look again when it does,
        # so a dead holder's event is taken over then, not only by the sweep.
        expires_in = (row.processing_started_at + settings.WEBHOOK_PROCESSING_LEASE - now).total_seconds()
        logger.info(
            "webhook.skip event=%s status=processing (another worker holds it) recheck_in=%.1f",
            row.stripe_event_id,
            expires_in,
        )
        webhook_event_enqueue(event_id=event_id, countdown=max(expires_in, 0.0) + LEASE_RECHECK_MARGIN)
    else:
        logger.info("webhook.skip event=%s status=%s", row.stripe_event_id, row.status)
    return None


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
        return False
    for name, value in changes.items():  # the row as stored, without reading it back
        setattr(row, name, value)
    return True


def _reconciled(*, note: str | None, payment_intent_id: str) -> bool:
    """Whether the handler's note says it reconciled this PaymentIntent (``<action> <pi> ...``)."""
    return bool(payment_intent_id) and (note or "").split()[1:2] == [payment_intent_id]


@cache
def _coalesce_sql() -> str:
    table = WebhookEvent._meta.db_table
    types = ", ".join(["%s"] * len(handlers.COALESCIBLE))
    return (
        f'UPDATE "{table}" SET "status" = %s, "processed_at" = %s, "updated_at" = %s, "last_error" = %s, '
        f'"next_attempt_at" = NULL WHERE "payment_intent_id" = %s AND "status" = %s AND "type" IN ({types}) '
        f'AND "received_at" < %s AND "id" <> %s RETURNING "type"'
    )


def _coalesce(*, row: WebhookEvent) -> int:
    """Settle the other waiting events of ``row``'s PaymentIntent that its reconcile covered: those of a
    ``handlers.COALESCIBLE`` type received before ``row`` was claimed (so before Stripe was re-read),
    minus ``COALESCE_CLOCK_MARGIN`` for the clocks of the web and worker machines. One statement; their
    queued messages then find them processed and stop at the claim, without a Stripe call."""
    assert row.processing_started_at is not None
    now = timezone.now()
    note = f"coalesced: reconciled with {row.stripe_event_id} ({row.id})"
    params: list[Any] = [Status.PROCESSED, now, now, note, row.payment_intent_id, Status.RECEIVED]
    params += [*sorted(handlers.COALESCIBLE), row.processing_started_at - COALESCE_CLOCK_MARGIN, row.pk]
    with connection.cursor() as cursor:
        cursor.execute(_coalesce_sql(), params)
        types = [event_type for (event_type,) in cursor.fetchall()]
    for event_type in types:
        metrics.WEBHOOK_EVENTS_PROCESSED.labels(event_type).inc()
    if types:
        logger.info(
            "webhook.coalesced event=%s payment_intent_id=%s count=%d",
            row.stripe_event_id,
            row.payment_intent_id,
            len(types),
        )
    return len(types)


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
    request_context.bind(stripe_event_id=row.stripe_event_id, payment_intent_id=row.payment_intent_id or None)
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
        if row.type in handlers.RECONCILING and _reconciled(note=note, payment_intent_id=row.payment_intent_id):
            _coalesce(row=row)
    else:
        row.refresh_from_db()  # another worker took it over: what it wrote
    logger.info(
        "webhook.processed event=%s type=%s attempt=%s ms=%d note=%s",
        row.stripe_event_id,
        row.type,
        row.attempts,
        duration * 1000,
        note or "",
    )
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
