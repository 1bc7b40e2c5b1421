"""Disputes (chargebacks): upsert from Stripe dispute objects, and the open-dispute check.

Dispute events are order-independent without re-reading Stripe (localstripe stores no
disputes, so the event's object is the source): a status only moves *forward* along
``DISPUTE_STATUS_RANK`` (open -> under review -> closed), the funds flags only go from
False to True, and a field is filled from a snapshot only when the snapshot is at least
as advanced as what we have. Delivering ``created``, ``updated``, ``funds_withdrawn``
and ``closed`` in any order, any number of times, ends in the same row.

Orders consult :func:`dispute_open_for_payment_intent` before fulfilling.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from common import metrics
from payments import selectors
from payments.models import Dispute
from payments.services.common import id_of

logger = logging.getLogger(__name__)

# Stripe dispute statuses, by how far along the dispute is. Never moves backwards.
DISPUTE_STATUS_RANK: dict[str, int] = {
    "warning_needs_response": 10,
    "needs_response": 10,
    "warning_under_review": 20,
    "under_review": 20,
    "warning_closed": 30,
    "charge_refunded": 30,
    "prevented": 30,
    "won": 30,
    "lost": 30,
}


@dataclass(frozen=True)
class DisputeChange:
    dispute: Dispute
    created: bool
    changed: list[str] = field(default_factory=list)

    @property
    def is_noop(self) -> bool:
        return not self.created and not self.changed


def _rank(status: str) -> int:
    return DISPUTE_STATUS_RANK.get(status, 0)


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int) and value > 0:
        return datetime.fromtimestamp(value, tz=UTC)
    return None


def dispute_payment_intent_id(*, dispute: dict[str, Any]) -> str:
    """The PaymentIntent of a dispute object; reads the charge from Stripe when the object lacks it."""
    return selectors.payment_intent_id_of(stripe_object=dispute)


def dispute_funds_withdrawn(*, dispute: dict[str, Any]) -> bool:
    """Whether Stripe took the disputed funds: its balance transactions say so, or (for a card
    dispute, whose funds Stripe withdraws when it opens) any status but an inquiry's."""
    withdrawn, _ = _funds_flags(dispute)
    return withdrawn or not str(dispute.get("status") or "warning_").startswith("warning_")


def dispute_funds_reinstated(*, dispute: dict[str, Any]) -> bool:
    """Whether Stripe gave the disputed funds back (a won dispute)."""
    _, reinstated = _funds_flags(dispute)
    return reinstated or (dispute.get("status") == "won" and dispute_funds_withdrawn(dispute=dispute))


def _funds_flags(dispute: dict[str, Any]) -> tuple[bool, bool]:
    """(withdrawn, reinstated) as told by the dispute's balance transactions."""
    withdrawn = reinstated = False
    for txn in dispute.get("balance_transactions") or []:
        amount = txn.get("amount") if isinstance(txn, dict) else None
        if isinstance(amount, int):
            withdrawn |= amount < 0
            reinstated |= amount > 0
    return withdrawn, reinstated


def dispute_upsert_from_stripe(
    *,
    dispute: dict[str, Any],
    payment_intent_id: str,
    order_id: str = "",
    funds_withdrawn: bool = False,
    funds_reinstated: bool = False,
) -> DisputeChange:
    """Create or merge our Dispute row from a Stripe dispute object (idempotent, order-independent).

    ``funds_withdrawn`` / ``funds_reinstated`` come from the event type
    (``charge.dispute.funds_withdrawn`` / ``funds_reinstated``); the object's balance
    transactions set them too. No Stripe call happens here.
    """
    stripe_id = dispute["id"]
    status = str(dispute.get("status") or "")
    bt_withdrawn, bt_reinstated = _funds_flags(dispute)
    snapshot = {
        "charge_id": id_of(dispute.get("charge")),
        "amount": int(dispute.get("amount") or 0),
        "currency_code": str(dispute.get("currency") or "").lower(),
        "reason": str(dispute.get("reason") or ""),
        "evidence_due_by": _timestamp((dispute.get("evidence_details") or {}).get("due_by")),
    }
    with transaction.atomic():
        row, created = Dispute.objects.get_or_create(
            stripe_dispute_id=stripe_id,
            defaults={
                **snapshot,
                "payment_intent_id": payment_intent_id,
                "order_id": order_id,
                "status": status,
                "is_open": status in Dispute.OPEN_STATUSES,
                "funds_withdrawn": funds_withdrawn or bt_withdrawn,
                "funds_reinstated": funds_reinstated or bt_reinstated,
            },
        )
        if created:
            changed: list[str] = []
            metrics.record_dispute_opened(currency=row.currency_code, amount=row.amount)
        else:
            row = Dispute.objects.select_for_update().get(pk=row.pk)
            changed = _merge(
                row=row,
                status=status,
                snapshot=snapshot,
                payment_intent_id=payment_intent_id,
                order_id=order_id,
                funds_withdrawn=funds_withdrawn or bt_withdrawn,
                funds_reinstated=funds_reinstated or bt_reinstated,
            )
            if changed:
                row.save(update_fields=[*changed, "updated_at"])
    if created or changed:
        logger.info(
            "dispute.upserted dispute=%s payment_intent=%s order=%s status=%s open=%s created=%s changed=%s",
            stripe_id,
            row.payment_intent_id,
            row.order_id,
            row.status,
            row.is_open,
            created,
            ",".join(changed),
        )
    return DisputeChange(dispute=row, created=created, changed=changed)


def _merge(
    *,
    row: Dispute,
    status: str,
    snapshot: dict[str, Any],
    payment_intent_id: str,
    order_id: str,
    funds_withdrawn: bool,
    funds_reinstated: bool,
) -> list[str]:
    changed: list[str] = []

    def put(name: str, value: Any) -> None:
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed.append(name)

    if status and _rank(status) > _rank(row.status):
        put("status", status)
        put("is_open", status in Dispute.OPEN_STATUSES)
    if _rank(status) >= _rank(row.status):
        # An at-least-as-advanced snapshot may fill or correct the descriptive fields.
        for name, value in snapshot.items():
            if value not in (None, "", 0):
                put(name, value)
    if payment_intent_id and not row.payment_intent_id:
        put("payment_intent_id", payment_intent_id)
    if order_id and not row.order_id:
        put("order_id", order_id)
    if funds_withdrawn and not row.funds_withdrawn:
        put("funds_withdrawn", True)
    if funds_reinstated and not row.funds_reinstated:
        put("funds_reinstated", True)
    return changed


def dispute_link_order(*, payment_intent_id: str, order_id: str) -> list[Dispute]:
    """Attach this PaymentIntent's disputes that have no order yet to ``order_id``; returns those linked."""
    with transaction.atomic():
        rows = list(
            Dispute.objects.select_for_update()
            .filter(payment_intent_id=payment_intent_id, order_id="")
            .order_by("created_at", "id")
        )
        for row in rows:
            row.order_id = order_id
            row.save(update_fields=["order_id", "updated_at"])
    return rows


# --- Selectors ------------------------------------------------------------------------


def dispute_get(*, stripe_dispute_id: str) -> Dispute:
    return Dispute.objects.get(stripe_dispute_id=stripe_dispute_id)


def dispute_open_for_payment_intent(*, payment_intent_id: str) -> bool:
    """Whether a dispute on this PaymentIntent is open: fulfillment must stay on hold."""
    return Dispute.objects.filter(payment_intent_id=payment_intent_id, is_open=True).exists()


def disputes_for_payment_intent(*, payment_intent_id: str) -> list[Dispute]:
    return list(Dispute.objects.filter(payment_intent_id=payment_intent_id).order_by("created_at", "id"))
