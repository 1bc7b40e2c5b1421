"""Reconciliation of an order's money with Stripe (webhooks, the sweep) and dispute events."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from orders import selectors
from orders.models import Order
from orders.services.core import _amounts, _event, _payment_status_follow, _refund_status, order_lock
from payments import gateway, ledger
from payments.ledger import LedgerEntryData
from payments.models import Actor, LedgerEntryKind, LedgerEntryStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _StripeFacts:
    """What Stripe says about the money of one PaymentIntent, in ledger terms."""

    charge_id: str
    authorized: int  # the charge's amount, once the card was authorized
    is_captured: bool
    captured: int | None  # None: captured, amount not reported (localstripe has no amount_captured)
    canceled: bool
    refunds: list[dict[str, Any]]


def _stripe_facts(*, intent: dict[str, Any], refunds: list[dict[str, Any]]) -> _StripeFacts:
    charge = intent.get("latest_charge")
    if isinstance(charge, str):
        charge = gateway.charge_retrieve(id=charge)
    charge = charge or {}
    authorized = int(charge.get("amount") or intent.get("amount") or 0) if charge.get("status") == "succeeded" else 0
    is_captured = bool(charge.get("captured")) and authorized > 0
    amount_captured = charge.get("amount_captured")
    return _StripeFacts(
        charge_id=str(charge.get("id") or ""),
        authorized=authorized,
        is_captured=is_captured,
        captured=(int(amount_captured) if isinstance(amount_captured, int) else None) if is_captured else 0,
        canceled=intent.get("status") == "canceled",
        refunds=refunds,
    )


def order_payment_sync(*, payment_intent_id: str, actor: str = Actor.STRIPE) -> Order | None:
    """Re-read the PaymentIntent (charge, refunds) from Stripe and bring ledger and payment_status in line.

    Idempotent and order-independent (webhooks may arrive late, twice, or out of order): every
    fact is keyed by the Stripe object it comes from. Returns None if no order has this
    PaymentIntent (placement records its own rows). Calls Stripe: never inside a transaction.
    """
    order = selectors.order_get_by_payment_intent(payment_intent_id=payment_intent_id)
    if order is None:
        return None
    intent = gateway.payment_intent_retrieve(id=payment_intent_id)
    refunds = gateway.refund_list(payment_intent=payment_intent_id) if gateway.latest_charge_id(intent) else []
    facts = _stripe_facts(intent=intent, refunds=refunds)
    with transaction.atomic():
        order = order_lock(order_id=order.id)
        before = ledger.ledger_totals(payment_intent_id=payment_intent_id)
        entries = _sync_entries(order=order, facts=facts, before=before)
        ledger.ledger_entries_record(entries=entries)
        for refund in refunds:
            ledger.ledger_refund_status_set(stripe_refund_id=refund["id"], status=_refund_status(refund))
        after = _payment_status_follow(
            order=order, before=before, actor=actor, user_id=None, event_type="payment_synced", extra={}
        )
    if _amounts(before) != _amounts(after):
        logger.info(
            "order.payment_synced order_id=%s payment_intent_id=%s authorized=%s captured=%s voided=%s refunded=%s "
            "currency=%s payment_status=%s actor=%s",
            order.id,
            payment_intent_id,
            after.authorized,
            after.captured,
            after.voided,
            after.refunded,
            order.currency_code,
            order.payment_status,
            actor,
        )
    return order


def _sync_entries(*, order: Order, facts: _StripeFacts, before: ledger.LedgerTotals) -> list[LedgerEntryData]:
    """The ledger rows Stripe's facts imply that are not recorded yet (settles our in-flight rows)."""
    pi_id, charge_id = order.payment_intent_id, facts.charge_id
    recorded = ledger.ledger_recorded_object_ids(payment_intent_id=pi_id)
    pending = {
        e.kind: e for e in ledger.ledger_entries(payment_intent_id=pi_id).filter(status=LedgerEntryStatus.PENDING)
    }
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
                idempotency_key=f"pi:{pi_id}:authorization",
                stripe_object_id=charge_id,
                **common,
            )
        )

    captured = before.captured
    if facts.is_captured and charge_id not in recorded.get(LedgerEntryKind.CAPTURE, set()):
        in_flight = pending.get(LedgerEntryKind.CAPTURE)
        if in_flight is not None:  # our capture reached Stripe; the process died before settling it
            ledger.ledger_entry_settle(
                idempotency_key=in_flight.idempotency_key, status=LedgerEntryStatus.SUCCEEDED, stripe_object_id=charge_id
            )
            captured = in_flight.amount
        else:  # captured outside this system (e.g. the Stripe dashboard)
            captured = facts.captured if facts.captured is not None else authorized
            entries.append(
                LedgerEntryData(
                    kind=LedgerEntryKind.CAPTURE,
                    amount=captured,
                    idempotency_key=f"charge:{charge_id}:capture",
                    stripe_object_id=charge_id,
                    **common,
                )
            )

    # The part of the authorization that will never be captured: the rest of a partial
    # capture, or everything when the intent was canceled before any capture.
    rest = (authorized - captured) if facts.is_captured else (authorized if facts.canceled else 0)
    release_refund_id = ""
    if rest > 0:
        # Stripe (and localstripe) may show that released rest as a refund without our
        # metadata: that refund is the void, not money returned to the customer.
        for refund in facts.refunds:
            if not (refund.get("metadata") or {}).get("order_id") and int(refund.get("amount") or 0) == rest:
                release_refund_id = refund["id"]
                break
        if not before.voided:
            entries.append(
                LedgerEntryData(
                    kind=LedgerEntryKind.VOID,
                    amount=rest,
                    idempotency_key=f"pi:{pi_id}:void",
                    stripe_object_id=release_refund_id,
                    **common,
                )
            )

    for refund in facts.refunds:
        refund_id = refund["id"]
        if refund_id == release_refund_id or refund_id in recorded.get(LedgerEntryKind.REFUND, set()):
            continue
        if refund_id in recorded.get(LedgerEntryKind.VOID, set()):
            continue
        ours = (refund.get("metadata") or {}).get("ledger_key")
        in_flight = pending.get(LedgerEntryKind.REFUND)
        if ours and in_flight is not None and in_flight.idempotency_key == ours:
            ledger.ledger_entry_settle(idempotency_key=ours, status=_refund_status(refund), stripe_object_id=refund_id)
            continue
        entries.append(
            LedgerEntryData(
                kind=LedgerEntryKind.REFUND,
                amount=int(refund.get("amount") or 0),
                idempotency_key=f"refund:{refund_id}",
                stripe_object_id=refund_id,
                status=_refund_status(refund),
                **common,
            )
        )
    return entries



# --- Disputes (webhooks, issue 5) ---------------------------------------------------------------


def order_dispute_record(
    *, order_id: str, dispute_id: str, created: bool, changed: list[str], actor: str = Actor.STRIPE
) -> Order:
    """A dispute on the order's payment was opened or changed (payments.disputes): one order event.

    Fulfillment stays on hold while ``payments.disputes.dispute_open_for_payment_intent`` is true.
    """
    from payments import disputes

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
        _event(order=order, type=event_type, actor=actor, user_id=None, payload=payload).save()
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
