"""The payment ledger: append-only money movements of PaymentIntents (``LedgerEntry``).

Amounts authorized / captured / voided / refunded are *sums* over these rows; nothing
stores them in place. Every row has a unique ``idempotency_key`` derived from the Stripe
object it records (``pi:{pi}:authorization``, ``charge:{ch}:capture``, ``refund:{re}``,
``pi:{pi}:void``) or, for an operation we start ourselves, from the order and the ledger
version the staff member saw (``order:{id}:refund:v{n}``): recording the same fact twice
inserts nothing the second time.

A row we write *before* calling Stripe (an operation in flight) is ``pending`` and is settled
to ``succeeded``/``failed`` (with the Stripe object id) once Stripe answers; only settled
rows count. Keyed by ``payment_intent_id`` (an order has exactly one); ``order_id`` is
informative. This module knows nothing about orders or carts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from payments.models import Actor, LedgerEntry, LedgerEntryKind, LedgerEntryStatus

Kind = LedgerEntryKind
Status = LedgerEntryStatus


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    authorized: int = 0
    captured: int = 0
    voided: int = 0
    refunded: int = 0
    refund_pending: int = 0
    entries: int = 0  # every row, any status: the ledger "version" of the PaymentIntent

    @property
    def capturable(self) -> int:
        return max(self.authorized - self.captured - self.voided, 0)

    @property
    def refundable(self) -> int:
        return max(self.captured - self.refunded - self.refund_pending, 0)


@dataclass(frozen=True, slots=True)
class LedgerEntryData:
    payment_intent_id: str
    kind: str
    amount: int
    currency_code: str
    idempotency_key: str
    order_id: str = ""
    status: str = Status.SUCCEEDED
    stripe_object_id: str = ""
    actor: str = Actor.SYSTEM
    actor_user_id: str = ""
    reason: str = ""

    def as_model(self) -> LedgerEntry:
        if self.amount < 0:
            raise ValueError("ledger amounts are non-negative; the kind gives the direction")
        return LedgerEntry(
            payment_intent_id=self.payment_intent_id,
            order_id=self.order_id,
            kind=self.kind,
            status=self.status,
            amount=self.amount,
            currency_code=self.currency_code,
            idempotency_key=self.idempotency_key,
            stripe_object_id=self.stripe_object_id,
            actor=self.actor,
            actor_user_id=self.actor_user_id or "",
            reason=(self.reason or "")[:500],
        )


# --- Selectors ---------------------------------------------------------------------------

_SUCCEEDED = Q(status=Status.SUCCEEDED)
_AGGREGATES = {
    "authorized": Coalesce(Sum("amount", filter=Q(kind=Kind.AUTHORIZATION) & _SUCCEEDED), 0),
    "captured": Coalesce(Sum("amount", filter=Q(kind=Kind.CAPTURE) & _SUCCEEDED), 0),
    "voided": Coalesce(Sum("amount", filter=Q(kind=Kind.VOID) & _SUCCEEDED), 0),
    "refunded": Coalesce(Sum("amount", filter=Q(kind=Kind.REFUND) & _SUCCEEDED), 0),
    "refund_pending": Coalesce(Sum("amount", filter=Q(kind=Kind.REFUND, status=Status.PENDING)), 0),
    "entries": Count("id"),
}


def ledger_totals(*, payment_intent_id: str) -> LedgerTotals:
    """The money state of one PaymentIntent (one query)."""
    row = LedgerEntry.objects.filter(payment_intent_id=payment_intent_id).aggregate(**_AGGREGATES)
    return LedgerTotals(**row)


def ledger_totals_for(*, payment_intent_ids: Iterable[str]) -> dict[str, LedgerTotals]:
    """Totals for many PaymentIntents (one query); missing ids get zero totals."""
    ids = list(payment_intent_ids)
    rows = (
        LedgerEntry.objects.filter(payment_intent_id__in=ids)
        .values("payment_intent_id")
        .annotate(**_AGGREGATES)
        .order_by()
    )
    found = {row.pop("payment_intent_id"): LedgerTotals(**row) for row in rows}
    return {pi: found.get(pi, LedgerTotals()) for pi in ids}


def ledger_entries(*, payment_intent_id: str) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(payment_intent_id=payment_intent_id).order_by("created_at", "id")


def ledger_recorded_object_ids(*, payment_intent_id: str) -> dict[str, set[str]]:
    """Stripe object ids already recorded, by kind (settled or in flight)."""
    result: dict[str, set[str]] = {}
    rows = LedgerEntry.objects.filter(payment_intent_id=payment_intent_id).exclude(stripe_object_id="")
    for kind, object_id in rows.values_list("kind", "stripe_object_id"):
        result.setdefault(kind, set()).add(object_id)
    return result


def ledger_entry_get(*, idempotency_key: str) -> LedgerEntry | None:
    return LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()


# --- Services ----------------------------------------------------------------------------


def ledger_entries_record(*, entries: Iterable[LedgerEntryData]) -> None:
    """Insert the entries whose idempotency key is new; the others are left untouched (one query).

    Safe inside the caller's transaction: ``ON CONFLICT DO NOTHING`` never aborts it.
    """
    rows = [entry.as_model() for entry in entries]
    if rows:
        LedgerEntry.objects.bulk_create(rows, ignore_conflicts=True)


def ledger_entry_record(*, entry: LedgerEntryData) -> tuple[LedgerEntry, bool]:
    """Insert one entry unless its key exists; returns (the row with that key, inserted now)."""
    existing = ledger_entry_get(idempotency_key=entry.idempotency_key)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():  # a savepoint when the caller has a transaction open
            row = entry.as_model()
            row.save(force_insert=True)
            return row, True
    except IntegrityError:  # a concurrent writer recorded the same fact first
        return LedgerEntry.objects.get(idempotency_key=entry.idempotency_key), False


def ledger_entry_settle(*, idempotency_key: str, status: str, stripe_object_id: str = "") -> int:
    """Settle an in-flight (pending) entry once Stripe has answered. Returns rows changed (0 or 1)."""
    if status not in (Status.SUCCEEDED, Status.FAILED, Status.CANCELED, Status.PENDING):
        raise ValueError(f"unknown ledger status {status!r}")
    changes: dict[str, str] = {"status": status}
    if stripe_object_id:
        changes["stripe_object_id"] = stripe_object_id
    rows = LedgerEntry.objects.filter(idempotency_key=idempotency_key, status=Status.PENDING)
    changed = 0
    for row in rows:  # at most one; save() keeps updated_at right
        for name, value in changes.items():
            setattr(row, name, value)
        row.save(update_fields=[*changes, "updated_at"])
        changed += 1
    return changed


def ledger_refund_status_set(*, stripe_refund_id: str, status: str) -> int:
    """Stripe reported a refund's new status (pending -> succeeded / failed / canceled)."""
    changed = 0
    for row in LedgerEntry.objects.filter(kind=Kind.REFUND, stripe_object_id=stripe_refund_id).exclude(status=status):
        row.status = status
        row.save(update_fields=["status", "updated_at"])
        changed += 1
    return changed
