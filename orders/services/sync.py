"""Reconciliation of an order's money with Stripe (webhooks, the sweep) and dispute events."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from common.actors import Actor
from orders import selectors
from orders.models import Order, OrderStatus, PaymentStatus
from orders.services.cancellation import order_cancel_released
from orders.services.core import (
    event_record,
    ledger_amounts,
    order_lock,
    payment_status_follow,
    refund_status_of,
    transition_apply,
)
from orders.services.notifications import order_refund_notifications_record
from orders.transitions import order_completable
from payments import disputes, gateway, ledger
from payments.ledger import LedgerEntryData
from payments.models import LedgerEntry, LedgerEntryKind, LedgerEntryStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _StripeFacts:
    """What Stripe says about the money of one PaymentIntent, in ledger terms."""

    charge_id: str
    authorized: int  # the charge's amount, once the card was authorized
    is_captured: bool
    captured: int | None  # None: captured, amount not reported (no amount_captured on the charge)
    canceled: bool
    refunds: list[dict[str, Any]]  # oldest first
    disputes: list[dict[str, Any]]


def _stripe_facts(*, intent: dict[str, Any]) -> _StripeFacts:
    """Reads what the intent does not carry: its charge (if not expanded), refunds, disputes."""
    charge = intent.get("latest_charge")
    if isinstance(charge, str):
        charge = gateway.charge_retrieve(id=charge)
    charge = charge or {}
    charge_id = str(charge.get("id") or "")
    refunds = gateway.refund_list(payment_intent=intent["id"]) if charge_id else []
    # Stripe lists newest first; the release of a partial capture is the oldest refund.
    refunds = sorted(reversed(refunds), key=lambda refund: int(refund.get("created") or 0))
    found_disputes = gateway.dispute_list(payment_intent=intent["id"]) if charge.get("disputed") else []
    authorized = int(charge.get("amount") or intent.get("amount") or 0) if charge.get("status") == "succeeded" else 0
    is_captured = bool(charge.get("captured")) and authorized > 0
    amount_captured = charge.get("amount_captured")
    return _StripeFacts(
        charge_id=charge_id,
        authorized=authorized,
        is_captured=is_captured,
        captured=(int(amount_captured) if isinstance(amount_captured, int) else None) if is_captured else 0,
        canceled=intent.get("status") == "canceled",
        refunds=refunds,
        disputes=found_disputes,
    )


def order_payment_sync(*, payment_intent_id: str, actor: str = Actor.STRIPE) -> Order | None:
    """Re-read the PaymentIntent (charge, refunds, disputes) from Stripe and bring ledger and
    payment_status in line; cancel (and restock) an unfulfilled order whose authorization Stripe
    released (expiry, the dashboard).

    Idempotent and order-independent (webhooks may arrive late, twice, or out of order): every
    fact is keyed by the Stripe object it comes from, and settles our own in-flight row for it
    when there is one (matched by the ledger key we sent, or by the intent's state). Follows
    backward changes too (a refund that failed after succeeding, funds reinstated). Returns
    None if no order has this PaymentIntent (placement records its own rows). Calls Stripe:
    never inside a transaction.
    """
    order = selectors.order_get_by_payment_intent(payment_intent_id=payment_intent_id)
    if order is None:
        return None
    intent = gateway.payment_intent_retrieve(id=payment_intent_id)
    facts = _stripe_facts(intent=intent)
    with transaction.atomic():
        order = order_lock(order_id=order.id)
        before = ledger.ledger_totals(payment_intent_id=payment_intent_id)
        entries = _sync_entries(order=order, facts=facts, before=before)
        ledger.ledger_entries_record(entries=entries)
        for refund in facts.refunds:
            ledger.ledger_refund_status_set(stripe_refund_id=refund["id"], status=refund_status_of(refund))
        after = payment_status_follow(
            order=order, before=before, actor=actor, user_id=None, event_type="payment_synced", extra={}
        )
        if facts.refunds:  # one email per refund the ledger now holds as succeeded
            order_refund_notifications_record(order=order)
        if order_completable(order=order):  # captured (e.g. in the dashboard) after delivery
            transition_apply(
                order=order,
                field="status",
                target=OrderStatus.COMPLETED,
                actor=actor,
                user_id=None,
                payload={"reason": "delivered and paid"},
            )
    if ledger_amounts(before) != ledger_amounts(after):
        logger.info(
            "order.payment_synced order_id=%s payment_intent_id=%s authorized=%s captured=%s voided=%s refunded=%s "
            "disputed=%s currency=%s payment_status=%s actor=%s",
            *(order.id, payment_intent_id, after.authorized, after.captured, after.voided, after.refunded),
            *(after.disputed, order.currency_code, order.payment_status, actor),
        )
    for dispute in facts.disputes:  # the dispute events may have been lost: Stripe's objects say it all
        change = disputes.dispute_upsert_from_stripe(
            dispute=dispute,
            payment_intent_id=payment_intent_id,
            order_id=order.id,
            funds_withdrawn=disputes.dispute_funds_withdrawn(dispute=dispute),
            funds_reinstated=disputes.dispute_funds_reinstated(dispute=dispute),
        )
        if not change.is_noop:
            order = order_dispute_record(
                order_id=order.id,
                dispute_id=change.dispute.stripe_dispute_id,
                created=change.created,
                changed=change.changed,
                actor=actor,
            )
    if order.payment_status == PaymentStatus.CANCELED:
        order, _ = order_cancel_released(
            order_id=order.id,
            actor=actor,
            user_id=None,
            reason=f"authorization {intent.get('cancellation_reason') or 'canceled'} at Stripe",
        )
    return order


def _settle_pending(
    *, pending: list[LedgerEntry], kind: str, status: str, stripe_object_id: str = ""
) -> LedgerEntry | None:
    """Settle our oldest in-flight row of ``kind`` with a fact Stripe shows; None if there is none."""
    for row in pending:
        if row.kind == kind and row.status == LedgerEntryStatus.PENDING:
            ledger.ledger_entry_settle(
                idempotency_key=row.idempotency_key, status=status, stripe_object_id=stripe_object_id
            )
            row.status = status
            return row
    return None


def _sync_entries(*, order: Order, facts: _StripeFacts, before: ledger.LedgerTotals) -> list[LedgerEntryData]:
    """The ledger rows Stripe's facts imply that are not recorded yet (settles our in-flight rows)."""
    pi_id, charge_id = order.payment_intent_id, facts.charge_id
    rows = list(ledger.ledger_entries(payment_intent_id=pi_id))  # one read: everything below derives from it
    recorded: dict[str, set[str]] = {}  # Stripe object ids already recorded, by kind (settled or in flight)
    for row in rows:
        if row.stripe_object_id:
            recorded.setdefault(row.kind, set()).add(row.stripe_object_id)
    pending = [row for row in rows if row.status == LedgerEntryStatus.PENDING]
    by_key = {row.idempotency_key: row for row in rows}
    common: dict[str, Any] = {
        "payment_intent_id": pi_id,
        "order_id": order.id,
        "currency_code": order.currency_code,
        "actor": Actor.STRIPE,
    }
    entries: list[LedgerEntryData] = []
    authorized = max(before.authorized, facts.authorized)
    if facts.authorized and not before.authorized:
        entries.append(
            LedgerEntryData(
                kind=LedgerEntryKind.AUTHORIZATION,
                amount=facts.authorized,
                idempotency_key=ledger.key_authorization(payment_intent_id=pi_id),
                stripe_object_id=charge_id,
                **common,
            )
        )

    captured = before.captured
    if facts.is_captured and charge_id not in recorded.get(LedgerEntryKind.CAPTURE, set()):
        # Our capture reached Stripe (its answer was lost, or the process died before settling
        # it) -- unless Stripe captured another amount: one capture per intent, so that one was
        # made elsewhere (the dashboard) and ours can no longer happen.
        ours = next((row for row in pending if row.kind == LedgerEntryKind.CAPTURE), None)
        if ours is not None and facts.captured is not None and facts.captured != ours.amount:
            ledger.ledger_entry_settle(idempotency_key=ours.idempotency_key, status=LedgerEntryStatus.FAILED)
            logger.warning(
                "order.payment_capture_superseded order_id=%s payment_intent_id=%s key=%s ours=%s stripe=%s",
                *(order.id, pi_id, ours.idempotency_key, ours.amount, facts.captured),
            )
            ours = None
        if ours is not None:
            ledger.ledger_entry_settle(
                idempotency_key=ours.idempotency_key, status=LedgerEntryStatus.SUCCEEDED, stripe_object_id=charge_id
            )
            captured = ours.amount
        else:  # captured outside this system (e.g. the Stripe dashboard)
            captured = facts.captured if facts.captured is not None else authorized
            entries.append(
                LedgerEntryData(
                    kind=LedgerEntryKind.CAPTURE,
                    amount=captured,
                    idempotency_key=ledger.key_capture(charge_id=charge_id, payment_intent_id=pi_id),
                    stripe_object_id=charge_id,
                    **common,
                )
            )
    elif facts.is_captured and facts.captured is not None:
        captured = facts.captured

    # The part of the authorization that will never be captured: the rest of a partial
    # capture, or everything when the intent was canceled (or expired) before any capture.
    rest = (authorized - captured) if facts.is_captured else (authorized if facts.canceled else 0)
    void_row = by_key.get(ledger.key_void(payment_intent_id=pi_id))
    release_refund_id = void_row.stripe_object_id if void_row is not None else ""
    if rest > 0 and not release_refund_id:
        # Stripe shows that released rest as a refund without our metadata, made when the
        # capture (or cancel) happened: the oldest such refund of that amount. A refund made
        # later in the dashboard, even of the same amount, is money returned to the cardholder.
        release_refund_id = next(
            (
                refund["id"]
                for refund in facts.refunds
                if not (refund.get("metadata") or {}).get("ledger_key")
                and int(refund.get("amount") or 0) == rest
                and refund["id"] not in recorded.get(LedgerEntryKind.REFUND, set())
            ),
            "",
        )
    if rest > 0 and not before.voided:
        if (
            facts.canceled
            and not facts.is_captured
            and _settle_pending(pending=pending, kind=LedgerEntryKind.VOID, status=LedgerEntryStatus.SUCCEEDED)
        ):
            pass  # our cancel reached Stripe
        else:
            entries.append(
                LedgerEntryData(
                    kind=LedgerEntryKind.VOID,
                    amount=rest,
                    idempotency_key=ledger.key_void(payment_intent_id=pi_id),
                    stripe_object_id=release_refund_id,
                    **common,
                )
            )
    elif release_refund_id and void_row is not None and not void_row.stripe_object_id:
        ledger.ledger_entry_void_object_set(payment_intent_id=pi_id, stripe_object_id=release_refund_id)

    for refund in facts.refunds:
        refund_id = refund["id"]
        if refund_id == release_refund_id or refund_id in recorded.get(LedgerEntryKind.REFUND, set()):
            continue  # known: its status follows in order_payment_sync
        if refund_id in recorded.get(LedgerEntryKind.VOID, set()):
            continue
        ours = by_key.get(str((refund.get("metadata") or {}).get("ledger_key") or ""))
        if ours is not None and ours.kind == LedgerEntryKind.REFUND:
            if ours.status == LedgerEntryStatus.PENDING:  # our refund reached Stripe; its answer was lost
                ledger.ledger_entry_settle(
                    idempotency_key=ours.idempotency_key, status=refund_status_of(refund), stripe_object_id=refund_id
                )
                continue
            if not ours.stripe_object_id:
                logger.error(
                    "staff_alert kind=refund_settled_without_object order_id=%s key=%s refund=%s status=%s",
                    *(order.id, ours.idempotency_key, refund_id, ours.status),
                )
        entries.append(
            LedgerEntryData(
                kind=LedgerEntryKind.REFUND,
                amount=int(refund.get("amount") or 0),
                idempotency_key=ledger.key_refund(refund_id=refund_id),
                stripe_object_id=refund_id,
                status=refund_status_of(refund),
                **common,
            )
        )

    return entries


def _dispute_entries(
    *, order: Order, dispute_id: str, amount: int, withdrawn: bool, reinstated: bool
) -> list[LedgerEntryData]:
    """The funds a dispute moved: withdrawn when it opened, reinstated if it was won."""
    common: dict[str, Any] = {
        "payment_intent_id": order.payment_intent_id,
        "order_id": order.id,
        "currency_code": order.currency_code,
        "actor": Actor.STRIPE,
        "amount": amount,
        "stripe_object_id": dispute_id,
    }
    entries: list[LedgerEntryData] = []
    if amount > 0 and withdrawn:
        entries.append(
            LedgerEntryData(
                kind=LedgerEntryKind.DISPUTE, idempotency_key=ledger.key_dispute(dispute_id=dispute_id), **common
            )
        )
        if reinstated:
            entries.append(
                LedgerEntryData(
                    kind=LedgerEntryKind.DISPUTE_REVERSAL,
                    idempotency_key=ledger.key_dispute(dispute_id=dispute_id, reinstated=True),
                    **common,
                )
            )
    return entries


# --- Disputes (webhooks, issue 5) ---------------------------------------------------------------


def order_dispute_record(
    *, order_id: str, dispute_id: str, created: bool, changed: list[str], actor: str = Actor.STRIPE
) -> Order:
    """A dispute on the order's payment was opened or changed (payments.disputes): one order event,
    and the funds it withdrew or reinstated in the ledger (and so in payment_status).

    Fulfillment and refunds stay on hold while ``payments.disputes.dispute_open_for_payment_intent``
    is true.
    """
    dispute = disputes.dispute_get(stripe_dispute_id=dispute_id)
    if created:
        event_type = "dispute_opened"
    elif "is_open" in changed and not dispute.is_open:
        event_type = "dispute_closed"
    else:
        event_type = "dispute_updated"
    payload = {
        "dispute_id": dispute.stripe_dispute_id,
        "status": dispute.status,
        "is_open": dispute.is_open,
        "amount": dispute.amount,
        "currency_code": dispute.currency_code,
        "reason": dispute.reason,
        "evidence_due_by": dispute.evidence_due_by.isoformat() if dispute.evidence_due_by else None,
        "funds_withdrawn": dispute.funds_withdrawn,
        "funds_reinstated": dispute.funds_reinstated,
        "changed": list(changed),
    }
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        event_record(order=order, type=event_type, actor=actor, user_id=None, payload=payload).save()
        before = ledger.ledger_totals(payment_intent_id=order.payment_intent_id)
        entries = _dispute_entries(
            order=order,
            dispute_id=dispute.stripe_dispute_id,
            amount=dispute.amount,
            withdrawn=dispute.funds_withdrawn,
            reinstated=dispute.funds_reinstated,
        )
        if entries:
            ledger.ledger_entries_record(entries=entries)
            payment_status_follow(
                order=order, before=before, actor=actor, user_id=None, event_type="dispute_funds_moved", extra=payload
            )
    logger.info(
        "order.%s order_id=%s dispute_id=%s status=%s amount=%s currency=%s",
        event_type,
        order.id,
        dispute.stripe_dispute_id,
        dispute.status,
        dispute.amount,
        dispute.currency_code,
    )
    return order
