"""Staff payment operations on an order: capture, cancel (void the authorization), refund."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import transaction
from django.utils import timezone

from catalog import services as catalog_services
from common.errors import ApplicationError, Conflict, Unprocessable
from orders import selectors
from orders.models import FulfillmentStatus, Order, OrderStatus, PaymentStatus
from orders.services.core import (
    InvalidTransition,
    _event,
    _payment_status_follow,
    _refund_status,
    _transition,
    order_lock,
)
from orders.transitions import transition_allowed
from payments import gateway, ledger
from payments.ledger import LedgerEntryData
from payments.models import Actor, LedgerEntryKind, LedgerEntryStatus

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Shape of every operation: (1) short transaction under the order lock: validate against the
# ledger, insert a *pending* ledger row whose unique key is the operation's idempotency key;
# (2) Stripe call outside any transaction with that same key; (3) short transaction: settle
# the row, record what follows from it, move payment_status, write the event.
#
# Keys: ``order:{id}:{op}:v{n}`` where ``n`` is the ledger version (number of ledger rows of
# the PaymentIntent) the staff member saw (``expected_version``, a hidden field of the admin
# form). A double-submitted form carries the same ``n``: it finds the row of the first submit
# and returns (or answers 409 while the first is in flight) instead of moving money twice.


def _ledger_op_begin(
    *,
    order_id: str,
    kind: str,
    op: str,
    amount_for: Callable[[Order, ledger.LedgerTotals], int],
    expected_version: int | None,
    actor: str,
    user_id: str | None,
    reason: str,
) -> tuple[Order, ledger.LedgerTotals, LedgerEntryData | None]:
    """Step 1. Returns (order, totals before, the pending row to run or None if already done)."""
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        totals = ledger.ledger_totals(payment_intent_id=order.payment_intent_id)
        version = totals.entries if expected_version is None else expected_version
        key = f"order:{order.id}:{op}:v{version}"
        existing = ledger.ledger_entry_get(idempotency_key=key)
        if existing is not None:
            if existing.status == LedgerEntryStatus.PENDING:
                raise Conflict("This operation is already in progress.", code="payment_operation_in_progress")
            return order, totals, None  # a repeated submit of a finished operation
        if expected_version is not None and expected_version != totals.entries:
            raise Conflict(
                "The order's payment changed since this form was shown. Reload and try again.", code="order_changed"
            )
        amount = amount_for(order, totals)
        entry = LedgerEntryData(
            payment_intent_id=order.payment_intent_id,
            order_id=order.id,
            kind=kind,
            amount=amount,
            currency_code=order.currency_code,
            idempotency_key=key,
            status=LedgerEntryStatus.PENDING,
            actor=actor,
            actor_user_id=user_id or "",
            reason=reason,
        )
        ledger.ledger_entries_record(entries=[entry])
    return order, totals, entry


def _ledger_op_failed(*, entry: LedgerEntryData, error: ApplicationError, op: str) -> None:
    ledger.ledger_entry_settle(idempotency_key=entry.idempotency_key, status=LedgerEntryStatus.FAILED)
    logger.warning(
        "order.payment_%s_failed order_id=%s payment_intent_id=%s amount=%s currency=%s error=%s",
        op,
        entry.order_id,
        entry.payment_intent_id,
        entry.amount,
        entry.currency_code,
        error.code,
    )


def _ledger_op_run(
    *,
    order_id: str,
    kind: str,
    op: str,
    amount_for: Callable[[Order, ledger.LedgerTotals], int],
    stripe_call: Callable[[Order, LedgerEntryData], T],
    expected_version: int | None,
    actor: str,
    user_id: str | None,
    reason: str,
) -> tuple[Order, ledger.LedgerTotals, LedgerEntryData | None, T | None]:
    """Steps 1 and 2: the pending row, then ``stripe_call(order, entry)`` outside any transaction.

    Returns (order, totals before, the row that ran, Stripe's answer); the row and the answer
    are None when the operation was done already (a repeated submit). A refused Stripe call
    settles the row ``failed`` and re-raises.
    """
    order, before, entry = _ledger_op_begin(
        order_id=order_id,
        kind=kind,
        op=op,
        amount_for=amount_for,
        expected_version=expected_version,
        actor=actor,
        user_id=user_id,
        reason=reason,
    )
    if entry is None:
        return order, before, None, None
    try:
        answer = stripe_call(order, entry)
    except ApplicationError as exc:
        _ledger_op_failed(entry=entry, error=exc, op=op)
        raise
    return order, before, entry, answer


def _ledger_op_settle(
    *,
    order_id: str,
    before: ledger.LedgerTotals,
    entry: LedgerEntryData,
    status: str,
    stripe_object_id: str = "",
    also_record: list[LedgerEntryData] | None = None,
    actor: str,
    user_id: str | None,
    event_type: str,
    extra: dict[str, Any],
) -> tuple[Order, ledger.LedgerTotals]:
    """Step 3 of capture and refund: settle the row, record what follows, move payment_status.

    Returns (the order, ledger totals after).
    """
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        ledger.ledger_entry_settle(
            idempotency_key=entry.idempotency_key, status=status, stripe_object_id=stripe_object_id
        )
        if also_record:
            ledger.ledger_entries_record(entries=also_record)
        after = _payment_status_follow(
            order=order, before=before, actor=actor, user_id=user_id, event_type=event_type, extra=extra
        )
    return order, after


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

    order, before, entry, intent = _ledger_op_run(
        order_id=order_id,
        kind=LedgerEntryKind.CAPTURE,
        op="capture",
        amount_for=amount_for,
        stripe_call=lambda order, entry: gateway.payment_intent_capture(
            id=order.payment_intent_id, amount_to_capture=entry.amount, idempotency_key=entry.idempotency_key
        ),
        expected_version=expected_version,
        actor=actor,
        user_id=user_id,
        reason=reason,
    )
    if entry is None or intent is None:
        return order
    charge_id = gateway.latest_charge_id(intent) or ""
    rest = before.capturable - entry.amount
    order, after = _ledger_op_settle(
        order_id=order_id,
        before=before,
        entry=entry,
        status=LedgerEntryStatus.SUCCEEDED,
        stripe_object_id=charge_id,
        # the uncaptured rest is released (the order's intent and currency never change)
        also_record=[_void_entry(order=order, amount=rest, actor=actor, user_id=user_id)] if rest > 0 else None,
        actor=actor,
        user_id=user_id,
        event_type="payment_captured",
        extra={"reason": reason, "charge_id": charge_id},
    )
    logger.info(
        "order.payment_captured order_id=%s payment_intent_id=%s charge_id=%s amount=%s released=%s currency=%s "
        "captured_total=%s actor=%s user_id=%s",
        order.id,
        order.payment_intent_id,
        charge_id,
        entry.amount,
        rest,
        order.currency_code,
        after.captured,
        actor,
        user_id or "",
    )
    return order


def _void_entry(*, order: Order, amount: int, actor: str, user_id: str | None, stripe_object_id: str = "") -> LedgerEntryData:
    return LedgerEntryData(
        payment_intent_id=order.payment_intent_id,
        order_id=order.id,
        kind=LedgerEntryKind.VOID,
        amount=amount,
        currency_code=order.currency_code,
        idempotency_key=f"pi:{order.payment_intent_id}:void",
        stripe_object_id=stripe_object_id,
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
    """Release the whole authorization (nothing captured yet) and cancel the order."""

    def amount_for(order: Order, totals: ledger.LedgerTotals) -> int:
        _assert_authorized(order=order, what="cancel")
        return totals.capturable

    order, before, entry, _ = _ledger_op_run(
        order_id=order_id,
        kind=LedgerEntryKind.VOID,
        op="cancel",
        amount_for=amount_for,
        stripe_call=lambda order, entry: gateway.payment_intent_cancel(
            id=order.payment_intent_id, idempotency_key=entry.idempotency_key
        ),
        expected_version=expected_version,
        actor=actor,
        user_id=user_id,
        reason=reason,
    )
    if entry is None:
        return order
    # Nothing was shipped yet: the goods go back on hand (stock was taken at placement). Lines
    # never change, so they are read before the transaction; the stock rows are locked before
    # the order row (the fixed order: stock rows, then order).
    quantities = (
        selectors.order_line_quantities(order_id=order_id)
        if order.fulfillment_status == FulfillmentStatus.NOT_FULFILLED
        else {}
    )
    restocked: dict[str, int] = {}
    with transaction.atomic():
        if quantities:
            catalog_services.stock_lock(variant_ids=list(quantities))
        order = order_lock(order_id=order_id)
        ledger.ledger_entry_settle(idempotency_key=entry.idempotency_key, status=LedgerEntryStatus.SUCCEEDED)
        _payment_status_follow(
            order=order, before=before, actor=actor, user_id=user_id, event_type="payment_canceled", extra={"reason": reason}
        )
        if quantities and order.fulfillment_status == FulfillmentStatus.NOT_FULFILLED:
            restocked = _order_restock(order=order, quantities=quantities, actor=actor, user_id=user_id, reason=reason)
        for field, target in (("status", OrderStatus.CANCELED), ("fulfillment_status", FulfillmentStatus.CANCELED)):
            if transition_allowed(field=field, current=getattr(order, field), target=target):
                _transition(order=order, field=field, target=target, actor=actor, user_id=user_id, payload={"reason": reason})
    logger.info(
        "order.payment_canceled order_id=%s payment_intent_id=%s released=%s currency=%s restocked_units=%s "
        "actor=%s user_id=%s",
        order.id,
        order.payment_intent_id,
        entry.amount,
        order.currency_code,
        sum(restocked.values()),
        actor,
        user_id or "",
    )
    return order


def _order_restock(
    *, order: Order, quantities: dict[str, int], actor: str, user_id: str | None, reason: str
) -> dict[str, int]:
    """Inside the cancel transaction (stock rows and order locked): units back on hand, one event.

    Runs at most once per order: only while ``fulfillment_status`` is ``not_fulfilled``, in the
    transaction that moves it to ``canceled`` (final).
    """
    restocked = catalog_services.stock_restock(quantities=quantities)
    if restocked:
        _event(
            order=order,
            type="stock_restocked",
            actor=actor,
            user_id=user_id,
            payload={"reason": reason, "quantities": restocked, "units": sum(restocked.values())},
        ).save()
    return restocked


def order_payment_refund(
    *,
    order_id: str,
    amount: int | None,
    reason: str = "",
    actor: str = Actor.STAFF,
    user_id: str | None = None,
    expected_version: int | None = None,
) -> Order:
    """Refund ``amount`` (default: everything refundable) of what was captured."""

    def amount_for(order: Order, totals: ledger.LedgerTotals) -> int:
        return _amount_in_range(amount=amount, maximum=totals.refundable, what="refund")

    order, before, entry, refund = _ledger_op_run(
        order_id=order_id,
        kind=LedgerEntryKind.REFUND,
        op="refund",
        amount_for=amount_for,
        stripe_call=lambda order, entry: gateway.refund_create(
            payment_intent=order.payment_intent_id,
            amount=entry.amount,
            metadata={"order_id": order.id, "ledger_key": entry.idempotency_key},
            idempotency_key=entry.idempotency_key,
        ),
        expected_version=expected_version,
        actor=actor,
        user_id=user_id,
        reason=reason,
    )
    if entry is None or refund is None:
        return order
    order, after = _ledger_op_settle(
        order_id=order_id,
        before=before,
        entry=entry,
        status=_refund_status(refund),
        stripe_object_id=str(refund["id"]),
        actor=actor,
        user_id=user_id,
        event_type="payment_refunded",
        extra={"reason": reason, "refund_id": refund["id"]},
    )
    logger.info(
        "order.payment_refunded order_id=%s payment_intent_id=%s refund_id=%s amount=%s currency=%s "
        "refund_status=%s refunded_total=%s actor=%s user_id=%s",
        order.id,
        order.payment_intent_id,
        refund["id"],
        entry.amount,
        order.currency_code,
        refund.get("status"),
        after.refunded,
        actor,
        user_id or "",
    )
    return order
