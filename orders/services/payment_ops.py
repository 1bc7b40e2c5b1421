"""Staff payment operations on an order: capture, cancel (void the authorization), refund.

Shape of every operation:

1. ``_begin``: a short transaction under the order lock validates against the ledger and
   inserts a *pending* ledger row whose unique key is the operation's idempotency key
   (``ledger.key_operation``: the order, the operation and the ledger version the staff member
   saw). A double-submitted form carries the same version: it finds the row of the first
   submit instead of moving money twice.
2. ``_send``: the Stripe call, outside any transaction, with that same key and parameters
   that are a function of the row alone (so every retry sends the very same request).
3. ``_finish``: a short transaction settles the row with Stripe's answer, records what follows
   from it (the released rest of a partial capture), moves ``payment_status``, writes the event.

**Outcome unknown is not failure.** When Stripe's answer is lost (timeout, reset connection,
5xx, 429: ``gateway.OutcomeUnknown``) the row stays ``pending`` and the caller gets
``PaymentOperationPending``. ``payment_operation_resume`` finishes it later (the next staff
action on the order, the ``orders.resume_payment_operations`` beat job): it first re-reads the
PaymentIntent at Stripe (``order_payment_sync`` settles rows whose outcome Stripe shows, matched
by the ledger key in the refund's metadata or by the intent's state), and only if Stripe still
shows nothing sends the request again with the same key (Stripe replays what it did, or acts
once). Only a definite refusal (card error, invalid request) settles a row ``failed``. While a
row is pending no other operation starts on that PaymentIntent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.actors import Actor
from common.errors import ApplicationError, Conflict, Unprocessable
from orders import selectors
from orders.models import Order, OrderStatus, PaymentStatus
from orders.services.cancellation import order_cancel_released
from orders.services.core import (
    InvalidTransition,
    order_lock,
    payment_status_follow,
    refund_status_of,
    transition_apply,
)
from orders.services.notifications import order_refund_notifications_record
from orders.services.sync import order_payment_sync
from orders.transitions import order_completable
from payments import disputes, gateway, ledger
from payments.ledger import LedgerEntryData
from payments.models import LedgerEntry, LedgerEntryKind, LedgerEntryStatus, RefundReason

logger = logging.getLogger(__name__)

# Stripe keeps an idempotency key for 24 hours: past that a resend would act anew, so a row
# that old is only ever re-read, never sent again.
IDEMPOTENCY_KEY_LIFETIME = timedelta(hours=23)


def _resume_after() -> timedelta:
    """How old a pending row must be before someone other than its own request resumes it:
    longer than one request can take with all of stripe-python's retries, so a request still
    running is never raced by its own resume."""
    return settings.PAYMENT_OPERATION_RESUME_AFTER


class PaymentOperationPending(ApplicationError):
    """Stripe's answer to a capture / cancel / refund was lost: the operation stays pending."""

    http_status = 503
    code = "payment_operation_pending"
    default_message = (
        "Stripe did not confirm this operation (no answer in time). It is kept as pending and will be "
        "completed with the same request, never repeated; the payment ledger shows it as pending until then."
    )


@dataclass(frozen=True, slots=True)
class _Op:
    op: str  # capture | cancel | refund (the middle of the ledger key)
    event_type: str


_OPS: dict[str, _Op] = {
    LedgerEntryKind.CAPTURE: _Op("capture", "payment_captured"),
    LedgerEntryKind.VOID: _Op("cancel", "payment_canceled"),
    LedgerEntryKind.REFUND: _Op("refund", "payment_refunded"),
}


# --- The three steps -----------------------------------------------------------------------


def _in_flight(*, payment_intent_id: str) -> list[LedgerEntry]:
    """Pending rows whose outcome is unknown (a pending refund Stripe knows by id is merely slow)."""
    return [
        row for row in ledger.ledger_entries_pending(payment_intent_id=payment_intent_id) if not row.stripe_object_id
    ]


def _begin(
    *,
    order_id: str,
    kind: str,
    amount_for: Callable[[Order, ledger.LedgerTotals], int],
    expected_version: int | None,
    actor: str,
    user_id: str | None,
    reason: str,
    refund_reason: str = "",
) -> LedgerEntry | None:
    """Step 1: the pending row to send, or None when this very operation was done already."""
    op = _OPS[kind].op
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        totals = ledger.ledger_totals(payment_intent_id=order.payment_intent_id)
        version = totals.entries if expected_version is None else expected_version
        key = ledger.key_operation(order_id=order.id, op=op, version=version)
        existing = ledger.ledger_entry_get(idempotency_key=key)
        in_flight = _in_flight(payment_intent_id=order.payment_intent_id)
        if existing is not None and existing.status != LedgerEntryStatus.PENDING:
            return None  # a repeated submit of a finished operation
        if not in_flight:
            if expected_version is not None and expected_version != totals.entries:
                raise Conflict(
                    "The order's payment changed since this form was shown. Reload and try again.", code="order_changed"
                )
            entry = LedgerEntryData(
                payment_intent_id=order.payment_intent_id,
                order_id=order.id,
                kind=kind,
                amount=amount_for(order, totals),
                currency_code=order.currency_code,
                idempotency_key=key,
                status=LedgerEntryStatus.PENDING,
                actor=actor,
                actor_user_id=user_id or "",
                reason=reason,
                refund_reason=refund_reason,
            )
            row, _ = ledger.ledger_entry_record(entry=entry)
            return row
    # An operation on this payment is in flight. If its own request is over (stale), finish it
    # now (outside the lock: this calls Stripe). Either way this request does not move money:
    # the staff member must see the outcome first.
    stale = [row for row in in_flight if row.updated_at <= timezone.now() - _resume_after()]
    for row in stale:
        payment_operation_resume(idempotency_key=row.idempotency_key)
    if stale and not _in_flight(payment_intent_id=order.payment_intent_id):
        if existing is not None:  # it was this very operation: done now
            return None
        raise Conflict(
            "An earlier operation on this payment was pending at Stripe and has now completed. Reload and check "
            "the payment before trying again.",
            code="order_changed",
        )
    raise Conflict(
        "Another operation on this payment is pending at Stripe; it is completed automatically with the same "
        "request. Wait for it before trying again.",
        code="payment_operation_in_progress",
    )


def _send(row: LedgerEntry) -> dict[str, Any]:
    """Step 2: the Stripe call of a pending row; a function of the row alone (same request every time)."""
    pi_id, key = row.payment_intent_id, row.idempotency_key
    if row.kind == LedgerEntryKind.CAPTURE:
        return gateway.payment_intent_capture(id=pi_id, amount_to_capture=row.amount, idempotency_key=key)
    if row.kind == LedgerEntryKind.VOID:
        return gateway.payment_intent_cancel(id=pi_id, idempotency_key=key)
    if row.kind == LedgerEntryKind.REFUND:
        return gateway.refund_create(
            payment_intent=pi_id,
            amount=row.amount,
            reason=row.refund_reason or None,  # type: ignore[arg-type]  # a RefundReason value
            metadata={"order_id": row.order_id, "ledger_key": key},
            idempotency_key=key,
        )
    raise ValueError(f"no Stripe operation for a {row.kind} row")


def _finish(*, row: LedgerEntry, answer: dict[str, Any]) -> Order:
    """Step 3: settle the row with Stripe's answer, record what follows, move payment_status."""
    actor, user_id = row.actor, row.actor_user_id or None
    with transaction.atomic():
        order = order_lock(order_id=row.order_id)
        before = ledger.ledger_totals(payment_intent_id=row.payment_intent_id)
        extra: dict[str, Any] = {"reason": row.reason, "ledger_key": row.idempotency_key}
        if row.kind == LedgerEntryKind.CAPTURE:
            charge_id = gateway.latest_charge_id(answer) or ""
            settled = ledger.ledger_entry_settle(
                idempotency_key=row.idempotency_key, status=LedgerEntryStatus.SUCCEEDED, stripe_object_id=charge_id
            )
            rest = before.capturable - row.amount
            if settled and rest > 0:  # the uncaptured rest is released (one capture per PaymentIntent)
                ledger.ledger_entries_record(
                    entries=[_void_entry(order=order, amount=rest, actor=actor, user_id=user_id)]
                )
            extra.update(charge_id=charge_id, released=max(rest, 0))
        elif row.kind == LedgerEntryKind.VOID:
            ledger.ledger_entry_settle(idempotency_key=row.idempotency_key, status=LedgerEntryStatus.SUCCEEDED)
        else:
            ledger.ledger_entry_settle(
                idempotency_key=row.idempotency_key, status=refund_status_of(answer), stripe_object_id=str(answer["id"])
            )
            extra.update(refund_id=answer["id"], refund_reason=row.refund_reason)
        after = payment_status_follow(
            order=order, before=before, actor=actor, user_id=user_id, event_type=_OPS[row.kind].event_type, extra=extra
        )
        if row.kind == LedgerEntryKind.REFUND:  # one email per refund that succeeded (a pending one: once it does)
            order_refund_notifications_record(order=order)
        if order_completable(order=order):  # captured after delivery
            transition_apply(
                order=order,
                field="status",
                target=OrderStatus.COMPLETED,
                actor=actor,
                user_id=user_id,
                payload={"reason": "delivered and paid"},
            )
    if row.kind == LedgerEntryKind.VOID:
        order, _ = order_cancel_released(order_id=order.id, actor=actor, user_id=user_id, reason=row.reason)
    logger.info(
        "order.%s order_id=%s payment_intent_id=%s amount=%s currency=%s key=%s stripe_object=%s "
        "captured_total=%s refunded_total=%s actor=%s user_id=%s",
        *(
            _OPS[row.kind].event_type,
            order.id,
            order.payment_intent_id,
            row.amount,
            order.currency_code,
            row.idempotency_key,
        ),
        *(answer.get("id"), after.captured, after.refunded, actor, user_id or ""),
    )
    return order


def _failed(*, row: LedgerEntry, error: ApplicationError) -> None:
    with transaction.atomic():
        order_lock(order_id=row.order_id)
        ledger.ledger_entry_settle(idempotency_key=row.idempotency_key, status=LedgerEntryStatus.FAILED)
    logger.warning(
        "order.payment_%s_failed order_id=%s payment_intent_id=%s amount=%s currency=%s key=%s error=%s",
        *(_OPS[row.kind].op, row.order_id, row.payment_intent_id, row.amount, row.currency_code, row.idempotency_key),
        error.code,
    )


def _pending(*, row: LedgerEntry, error: ApplicationError) -> None:
    LedgerEntry.objects.filter(pk=row.pk, status=LedgerEntryStatus.PENDING).update(updated_at=timezone.now())
    logger.warning(
        "order.payment_%s_pending order_id=%s payment_intent_id=%s amount=%s currency=%s key=%s error=%s "
        "(outcome unknown: kept pending, to be re-read and retried with the same key)",
        *(_OPS[row.kind].op, row.order_id, row.payment_intent_id, row.amount, row.currency_code, row.idempotency_key),
        error.code,
    )


def _run(row: LedgerEntry | None, order_id: str) -> Order:
    """Steps 2 and 3 for a row just begun (None: done already)."""
    if row is None:
        return selectors.order_get(order_id=order_id)
    try:
        answer = _send(row)
    except gateway.OutcomeUnknown as exc:
        _pending(row=row, error=exc)
        raise PaymentOperationPending() from exc
    except ApplicationError as exc:
        _failed(row=row, error=exc)
        raise
    return _finish(row=row, answer=answer)


def payment_operation_resume(*, idempotency_key: str) -> str:
    """Finish a pending operation whose outcome is unknown; returns the row's status afterwards.

    Re-reads Stripe first; sends again with the same key only while Stripe still keeps the key.
    Never raises for a Stripe outage (the row stays pending for the next try).
    """
    row = ledger.ledger_entry_get(idempotency_key=idempotency_key)
    if row is None or row.status != LedgerEntryStatus.PENDING or not row.order_id:
        return row.status if row is not None else ""
    try:
        order_payment_sync(payment_intent_id=row.payment_intent_id, actor=Actor.SYSTEM)
    except ApplicationError as exc:
        _pending(row=row, error=exc)
        return LedgerEntryStatus.PENDING
    row.refresh_from_db()
    if row.status != LedgerEntryStatus.PENDING or row.stripe_object_id:
        return row.status  # known at Stripe: the sync follows it from here
    if timezone.now() - row.created_at > IDEMPOTENCY_KEY_LIFETIME:
        # Stripe shows no trace of it and no longer knows the key: it never happened.
        _failed(row=row, error=Unprocessable("Stripe never recorded this operation.", code="payment_operation_lost"))
        return LedgerEntryStatus.FAILED
    try:
        answer = _send(row)
    except gateway.OutcomeUnknown as exc:
        _pending(row=row, error=exc)
        return LedgerEntryStatus.PENDING
    except ApplicationError as exc:
        _failed(row=row, error=exc)
        return LedgerEntryStatus.FAILED
    _finish(row=row, answer=answer)
    row.refresh_from_db()
    return row.status


def payment_operations_resume(*, older_than: timedelta) -> int:
    """The beat job: resume every pending operation untouched for ``older_than``. Returns how many settled."""
    settled = 0
    for row in ledger.ledger_entries_pending_since(before=timezone.now() - older_than):
        if row.order_id and payment_operation_resume(idempotency_key=row.idempotency_key) != LedgerEntryStatus.PENDING:
            settled += 1
    return settled


# --- The operations ------------------------------------------------------------------------


def _assert_authorized(*, order: Order, what: str) -> None:
    if order.payment_status != PaymentStatus.AUTHORIZED:
        raise InvalidTransition(f"Cannot {what} a payment that is {order.payment_status}.", param="payment_status")


def _amount_in_range(*, amount: int | None, maximum: int, what: str) -> int:
    if maximum <= 0:
        raise Unprocessable(f"There is nothing left to {what}.", code=f"nothing_to_{what}")
    value = maximum if amount is None else amount
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise Unprocessable(
            f"The amount to {what} must be between 1 and {maximum} (minor units).",
            code=f"{what}_amount_invalid",
            param="amount",
        )
    return value


def order_payment_capture(
    *,
    order_id: str,
    amount: int | None = None,
    actor: str = Actor.STAFF,
    user_id: str | None = None,
    reason: str = "",
    expected_version: int | None = None,
) -> Order:
    """Capture ``amount`` (default: all) of the authorization; the uncaptured rest is released."""

    def amount_for(order: Order, totals: ledger.LedgerTotals) -> int:
        _assert_authorized(order=order, what="capture")
        if order.capture_before and timezone.now() >= order.capture_before:
            raise Unprocessable(
                "The authorization has expired; it can no longer be captured.", code="authorization_expired"
            )
        return _amount_in_range(amount=amount, maximum=totals.capturable, what="capture")

    row = _begin(
        order_id=order_id,
        kind=LedgerEntryKind.CAPTURE,
        amount_for=amount_for,
        expected_version=expected_version,
        actor=actor,
        user_id=user_id,
        reason=reason,
    )
    return _run(row, order_id)


def _void_entry(*, order: Order, amount: int, actor: str, user_id: str | None) -> LedgerEntryData:
    return LedgerEntryData(
        payment_intent_id=order.payment_intent_id,
        order_id=order.id,
        kind=LedgerEntryKind.VOID,
        amount=amount,
        currency_code=order.currency_code,
        idempotency_key=ledger.key_void(payment_intent_id=order.payment_intent_id),
        actor=actor,
        actor_user_id=user_id or "",
    )


def order_payment_cancel(
    *,
    order_id: str,
    actor: str = Actor.STAFF,
    user_id: str | None = None,
    reason: str = "",
    expected_version: int | None = None,
) -> Order:
    """Release the whole authorization (nothing captured yet) and cancel the order (restocked if unfulfilled)."""

    def amount_for(order: Order, totals: ledger.LedgerTotals) -> int:
        _assert_authorized(order=order, what="cancel")
        return totals.capturable

    row = _begin(
        order_id=order_id,
        kind=LedgerEntryKind.VOID,
        amount_for=amount_for,
        expected_version=expected_version,
        actor=actor,
        user_id=user_id,
        reason=reason,
    )
    return _run(row, order_id)


def order_payment_refund(
    *,
    order_id: str,
    amount: int | None,
    reason: str = "",
    refund_reason: str | None = None,
    actor: str = Actor.STAFF,
    user_id: str | None = None,
    expected_version: int | None = None,
) -> Order:
    """Refund ``amount`` (default: everything refundable) of what was captured.

    ``refund_reason`` (a ``RefundReason``) is sent to Stripe (``fraudulent`` informs Radar);
    ``reason`` is the staff note. Refused while a dispute on the payment is open: the disputed
    funds are Stripe's to return, and a refund on top would pay the cardholder twice.
    """
    if refund_reason and refund_reason not in RefundReason.values:
        raise Unprocessable(
            f"Unknown refund reason {refund_reason!r}.", code="refund_reason_invalid", param="refund_reason"
        )

    def amount_for(order: Order, totals: ledger.LedgerTotals) -> int:
        if disputes.dispute_open_for_payment_intent(payment_intent_id=order.payment_intent_id):
            raise Conflict(
                "A dispute on this payment is open: refunds are disabled until it is closed.", code="dispute_open"
            )
        return _amount_in_range(amount=amount, maximum=totals.refundable, what="refund")

    row = _begin(
        order_id=order_id,
        kind=LedgerEntryKind.REFUND,
        amount_for=amount_for,
        expected_version=expected_version,
        actor=actor,
        user_id=user_id,
        reason=reason,
        refund_reason=refund_reason or "",
    )
    return _run(row, order_id)
