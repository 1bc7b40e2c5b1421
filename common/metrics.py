"""Business metrics shared by every app (Prometheus, via prometheus_client).

Services call the small ``record_*`` functions below wherever the fact happens,
inside their transaction or not: the increment is deferred to ``on_commit``, so a
rolled-back write is never counted. Amounts are counted in integer minor units of their currency
(``currency`` label); Prometheus stores samples as float64, which is exact for
integers up to 2**53, far beyond any shop's lifetime total.

The metrics are served by ``GET /metrics`` (webhooks.views.metrics_view). In a
multi-process deployment (several gunicorn workers, Celery workers) set
``PROMETHEUS_MULTIPROC_DIR`` to a directory shared by the processes of one host,
emptied at deploy; prometheus_client then aggregates across processes.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from prometheus_client import Counter, Histogram

NAMESPACE = "checkout"

# --- Webhooks -------------------------------------------------------------------------

WEBHOOK_EVENTS_RECEIVED = Counter(
    "webhook_events_received", "Verified Stripe events stored in the inbox.", ["type"], namespace=NAMESPACE
)
WEBHOOK_EVENTS_DUPLICATE = Counter(
    "webhook_events_duplicate",
    "Verified Stripe events acknowledged as already stored (redeliveries).",
    ["type"],
    namespace=NAMESPACE,
)
WEBHOOK_EVENTS_REJECTED = Counter(
    "webhook_events_rejected",
    "Webhook requests refused with 400 (missing, forged, tampered or stale signature).",
    ["reason"],
    namespace=NAMESPACE,
)
WEBHOOK_EVENTS_PROCESSED = Counter(
    "webhook_events_processed", "Inbox events whose handler completed.", ["type"], namespace=NAMESPACE
)
WEBHOOK_EVENT_ATTEMPTS_FAILED = Counter(
    "webhook_event_attempts_failed",
    "Processing attempts that raised (each is retried until the last attempt).",
    ["type"],
    namespace=NAMESPACE,
)
WEBHOOK_EVENTS_FAILED = Counter(
    "webhook_events_failed", "Inbox events dead-lettered after their last attempt.", ["type"], namespace=NAMESPACE
)
WEBHOOK_PROCESSING_SECONDS = Histogram(
    "webhook_processing_seconds",
    "Time spent in one processing attempt of an event (handler incl. Stripe reads).",
    ["type"],
    namespace=NAMESPACE,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
WEBHOOK_EVENT_LAG_SECONDS = Histogram(
    "webhook_event_lag_seconds",
    "Time from storing an event to its successful processing (queueing + retries + handler).",
    ["type"],
    namespace=NAMESPACE,
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0),
)

# --- Payments and orders --------------------------------------------------------------

PAYMENT_SESSIONS_CREATED = Counter(
    "payment_sessions_created", "Payment sessions (PaymentIntents) created.", ["currency"], namespace=NAMESPACE
)
PAYMENTS_AUTHORIZED = Counter(
    "payments_authorized",
    "Payments authorized (or charged, with automatic capture).",
    ["currency"],
    namespace=NAMESPACE,
)
PAYMENTS_AUTHORIZED_AMOUNT = Counter(
    "payments_authorized_amount_minor", "Authorized amount, minor units.", ["currency"], namespace=NAMESPACE
)
PAYMENTS_DECLINED = Counter(
    "payments_declined",
    "Payment attempts declined (a declined PaymentAttempt row each), by Stripe's decline or error code.",
    ["currency", "code"],
    namespace=NAMESPACE,
)
PAYMENT_ATTEMPTS = Counter(
    "payment_attempts",
    "Payment attempt outcomes (one PaymentAttempt row each; the dashboard's success rate counts the same rows).",
    ["stage", "outcome"],
    namespace=NAMESPACE,
)
ORDERS_CREATED = Counter(
    "orders_created",
    "Orders placed, by what placed them (customer = storefront complete, stripe = webhook, system = reconciliation).",
    ["currency", "actor"],
    namespace=NAMESPACE,
)
CAPTURES = Counter("captures", "Captures recorded in the ledger.", ["currency"], namespace=NAMESPACE)
CAPTURED_AMOUNT = Counter("captured_amount_minor", "Captured amount, minor units.", ["currency"], namespace=NAMESPACE)
REFUNDS = Counter("refunds", "Refunds recorded in the ledger (succeeded).", ["currency"], namespace=NAMESPACE)
REFUNDED_AMOUNT = Counter("refunded_amount_minor", "Refunded amount, minor units.", ["currency"], namespace=NAMESPACE)
DISPUTES_OPENED = Counter("disputes_opened", "Disputes (chargebacks) first seen.", ["currency"], namespace=NAMESPACE)
DISPUTED_AMOUNT = Counter("disputed_amount_minor", "Disputed amount, minor units.", ["currency"], namespace=NAMESPACE)
PAYMENTS_CANCELED = Counter(
    "payments_canceled", "Authorizations voided or expired (staff alert).", ["currency"], namespace=NAMESPACE
)
RECONCILIATION_FIXES = Counter(
    "reconciliation_fixes", "Payment states repaired by the reconciliation sweep.", ["kind"], namespace=NAMESPACE
)

# --- Infrastructure -------------------------------------------------------------------

THROTTLE_CACHE_ERRORS = Counter(
    "throttle_cache_errors",
    "Throttle cache calls that failed (Redis unreachable): counted in the process's fallback instead.",
    ["scope"],
    namespace=NAMESPACE,
)


def _currency(code: str) -> str:
    return (code or "unknown").lower()


def _after_commit(record: Callable[[], None]) -> None:
    """Count once the caller's transaction commits (at once without one): rollbacks are never counted."""
    transaction.on_commit(record, robust=True)


def record_payment_session_created(*, currency: str) -> None:
    _after_commit(lambda: PAYMENT_SESSIONS_CREATED.labels(_currency(currency)).inc())


def record_payment_authorized(*, currency: str, amount: int) -> None:
    def record() -> None:
        PAYMENTS_AUTHORIZED.labels(_currency(currency)).inc()
        PAYMENTS_AUTHORIZED_AMOUNT.labels(_currency(currency)).inc(amount)

    _after_commit(record)


PAID_SESSION_STATUSES = frozenset({"authorized", "succeeded"})


def record_payment_session_status(*, currency: str, amount: int, old: str, new: str) -> None:
    """A payment session changed status: counts an authorization when it becomes paid."""
    if new in PAID_SESSION_STATUSES and old not in PAID_SESSION_STATUSES:
        record_payment_authorized(currency=currency, amount=amount)


def record_payment_attempt(*, stage: str, outcome: str, currency: str, code: str) -> None:
    """A PaymentAttempt row was inserted (``payments.services.payment_attempt_record``, its only caller).

    Counts ``payment_attempts{stage,outcome}``, and a decline also in ``payments_declined``.
    """

    def record() -> None:
        PAYMENT_ATTEMPTS.labels(stage, outcome).inc()
        if outcome == "declined":
            PAYMENTS_DECLINED.labels(_currency(currency), code or "unknown").inc()

    _after_commit(record)


def record_payment_canceled(*, currency: str) -> None:
    _after_commit(lambda: PAYMENTS_CANCELED.labels(_currency(currency)).inc())


def record_order_created(*, currency: str, actor: str, captured: int = 0) -> None:
    """An order was placed (``captured``: the amount charged at once, automatic capture)."""
    _after_commit(lambda: ORDERS_CREATED.labels(_currency(currency), actor or "unknown").inc())
    record_money_moved(currency=currency, captured=captured, refunded=0)


def record_money_moved(*, currency: str, captured: int, refunded: int) -> None:
    """Ledger deltas of one operation or sync (negative or zero deltas are ignored)."""

    def record() -> None:
        if captured > 0:
            CAPTURES.labels(_currency(currency)).inc()
            CAPTURED_AMOUNT.labels(_currency(currency)).inc(captured)
        if refunded > 0:
            REFUNDS.labels(_currency(currency)).inc()
            REFUNDED_AMOUNT.labels(_currency(currency)).inc(refunded)

    if captured > 0 or refunded > 0:
        _after_commit(record)


def record_capture(*, currency: str, amount: int) -> None:
    record_money_moved(currency=currency, captured=amount, refunded=0)


def record_refund(*, currency: str, amount: int) -> None:
    record_money_moved(currency=currency, captured=0, refunded=amount)


def record_dispute_opened(*, currency: str, amount: int) -> None:
    def record() -> None:
        DISPUTES_OPENED.labels(_currency(currency)).inc()
        DISPUTED_AMOUNT.labels(_currency(currency)).inc(amount)

    _after_commit(record)


def record_reconciliation_fix(*, kind: str) -> None:
    _after_commit(lambda: RECONCILIATION_FIXES.labels(kind).inc())


def record_throttle_cache_error(*, scope: str) -> None:
    """A throttle's cache call failed (common.throttling): counted at once, no database fact to wait for."""
    THROTTLE_CACHE_ERRORS.labels(scope or "unknown").inc()
