"""The payment ledger: append-only money movements of PaymentIntents (``LedgerEntry``).

Amounts authorized / captured / voided / refunded / disputed are *sums* over these rows;
nothing stores them in place. Every row has a unique ``idempotency_key`` derived from the
Stripe object it records or, for an operation we start ourselves, from the order and the
ledger version the staff member saw. The ``key_*`` functions below are the only place these
formats are spelled: recording the same fact twice inserts nothing the second time. A
Stripe object is recorded at most once per kind (a unique constraint on ``kind`` +
``stripe_object_id``), whichever path (our own call, a webhook, the sweep) sees it first.

A row we write *before* calling Stripe (an operation in flight) is ``pending``. It is
settled ``succeeded``/``failed`` (with the Stripe object id) only once Stripe's outcome is
*known*: a timeout, a reset connection or a 5xx leaves it pending, to be re-read at Stripe
and retried with the same key (``orders.services.payment_ops``). Only settled rows count,
except that a pending refund is held back from what is refundable. Keyed by
``payment_intent_id`` (an order has exactly one); ``order_id`` is informative. This module
knows nothing about orders or carts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.actors import Actor
from payments.models import LedgerEntry, LedgerEntryKind, LedgerEntryStatus

Kind = LedgerEntryKind
Status = LedgerEntryStatus


# --- Keys: one function per format ------------------------------------------------------


def key_authorization(*, payment_intent_id: str) -> str:
    return f"pi:{payment_intent_id}:authorization"


def key_capture(*, charge_id: str = "", payment_intent_id: str = "") -> str:
    """The capture of a charge (``pi:...:capture`` only when the charge id is unknown)."""
    if charge_id:
        return f"charge:{charge_id}:capture"
    if not payment_intent_id:
        raise ValueError("a capture key needs a charge or a PaymentIntent id")
    return f"pi:{payment_intent_id}:capture"


def key_void(*, payment_intent_id: str) -> str:
    """The release of the (rest of the) authorization: at most one per PaymentIntent."""
    return f"pi:{payment_intent_id}:void"


def key_refund(*, refund_id: str) -> str:
    """A refund seen at Stripe that no operation of ours started (dashboard, other systems)."""
    return f"refund:{refund_id}"


def key_dispute(*, dispute_id: str, reinstated: bool = False) -> str:
    return f"dispute:{dispute_id}:{'reinstated' if reinstated else 'withdrawn'}"


def key_release(*, payment_intent_id: str, op: str, tag: str) -> str:
    """Releasing the money of a payment that became no order (``op`` cancel or refund; ``tag``
    says why: ``oos``, ``amount_mismatch``, ``orphan``). Also that call's Stripe idempotency key."""
    return f"pi:{payment_intent_id}:{op}:{tag}"


def key_operation(*, order_id: str, op: str, version: int) -> str:
    """A staff operation (capture, cancel, refund) on an order, at the ledger version they saw.

    Also the Stripe idempotency key of that operation's call: a retry after an unknown
    outcome sends the very same key, so Stripe replays instead of acting twice.
    """
    return f"order:{order_id}:{op}:v{version}"


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    authorized: int = 0
    captured: int = 0
    voided: int = 0
    refunded: int = 0
    refund_pending: int = 0
    disputed: int = 0  # withdrawn by disputes, less what was reinstated
    pending: int = 0  # rows in flight, any kind
    entries: int = 0  # every row, any status: the ledger "version" of the PaymentIntent

    @property
    def capturable(self) -> int:
        return max(self.authorized - self.captured - self.voided, 0)

    @property
    def refundable(self) -> int:
        return max(self.captured - self.refunded - self.refund_pending - self.disputed, 0)


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
    refund_reason: str = ""

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
            refund_reason=self.refund_reason or "",
        )


# --- Selectors ---------------------------------------------------------------------------

_SUCCEEDED = Q(status=Status.SUCCEEDED)
_AGGREGATES = {
    "authorized": Coalesce(Sum("amount", filter=Q(kind=Kind.AUTHORIZATION) & _SUCCEEDED), 0),
    "captured": Coalesce(Sum("amount", filter=Q(kind=Kind.CAPTURE) & _SUCCEEDED), 0),
    "voided": Coalesce(Sum("amount", filter=Q(kind=Kind.VOID) & _SUCCEEDED), 0),
    "refunded": Coalesce(Sum("amount", filter=Q(kind=Kind.REFUND) & _SUCCEEDED), 0),
    "refund_pending": Coalesce(Sum("amount", filter=Q(kind=Kind.REFUND, status=Status.PENDING)), 0),
    "dispute_withdrawn": Coalesce(Sum("amount", filter=Q(kind=Kind.DISPUTE) & _SUCCEEDED), 0),
    "dispute_reinstated": Coalesce(Sum("amount", filter=Q(kind=Kind.DISPUTE_REVERSAL) & _SUCCEEDED), 0),
    "pending": Count("id", filter=Q(status=Status.PENDING)),
    "entries": Count("id"),
}


def _totals(row: dict[str, int]) -> LedgerTotals:
    withdrawn, reinstated = row.pop("dispute_withdrawn", 0), row.pop("dispute_reinstated", 0)
    return LedgerTotals(**row, disputed=max(withdrawn - reinstated, 0))


def ledger_totals(*, payment_intent_id: str) -> LedgerTotals:
    """The money state of one PaymentIntent (one query)."""
    row = LedgerEntry.objects.filter(payment_intent_id=payment_intent_id).aggregate(**_AGGREGATES)
    return _totals(row)


def ledger_totals_for(*, payment_intent_ids: Iterable[str]) -> dict[str, LedgerTotals]:
    """Totals for many PaymentIntents (one query); missing ids get zero totals."""
    ids = list(payment_intent_ids)
    rows = (
        LedgerEntry.objects.filter(payment_intent_id__in=ids)
        .values("payment_intent_id")
        .annotate(**_AGGREGATES)
        .order_by()
    )
    found = {row.pop("payment_intent_id"): _totals(row) for row in rows}
    return {pi: found.get(pi, LedgerTotals()) for pi in ids}


def ledger_entries(*, payment_intent_id: str) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(payment_intent_id=payment_intent_id).order_by("created_at", "id")


def ledger_entry_get(*, idempotency_key: str) -> LedgerEntry | None:
    return LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()


def ledger_entries_pending(*, payment_intent_id: str) -> list[LedgerEntry]:
    """The operations of this PaymentIntent still in flight (outcome not known yet), oldest first."""
    return list(ledger_entries(payment_intent_id=payment_intent_id).filter(status=Status.PENDING))


def ledger_entries_pending_since(*, before: datetime) -> list[LedgerEntry]:
    """Every row in flight whose last change is older than ``before`` (the resume sweep)."""
    return list(LedgerEntry.objects.filter(status=Status.PENDING, updated_at__lt=before).order_by("updated_at", "id"))


def ledger_entry_by_object(*, kind: str, stripe_object_id: str) -> LedgerEntry | None:
    if not stripe_object_id:
        return None
    return LedgerEntry.objects.filter(kind=kind, stripe_object_id=stripe_object_id).first()


# --- Services ----------------------------------------------------------------------------


def ledger_entries_record(*, entries: Iterable[LedgerEntryData]) -> None:
    """Insert the entries whose idempotency key is new; the others are left untouched (one query).

    Safe inside the caller's transaction: ``ON CONFLICT DO NOTHING`` never aborts it.
    """
    rows = [entry.as_model() for entry in entries]
    if rows:
        LedgerEntry.objects.bulk_create(rows, ignore_conflicts=True)


def ledger_entry_void_object_set(*, payment_intent_id: str, stripe_object_id: str) -> int:
    """Name the Stripe refund object that shows the release of the authorization on the void row."""
    rows = LedgerEntry.objects.filter(
        idempotency_key=key_void(payment_intent_id=payment_intent_id), stripe_object_id=""
    )
    return rows.update(stripe_object_id=stripe_object_id, updated_at=timezone.now())


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
    """Settle an in-flight (pending) entry once Stripe's outcome is known. Returns rows changed (0 or 1).

    Call with the order locked (the callers' lock serialises every writer of one PaymentIntent).
    If the Stripe object was recorded already under another key (a webhook or the sweep saw it
    first, without our ledger key), this row is settled ``canceled`` instead: the fact counts
    once, through the row that recorded it.
    """
    if status not in (Status.SUCCEEDED, Status.FAILED, Status.CANCELED, Status.PENDING):
        raise ValueError(f"unknown ledger status {status!r}")
    row = LedgerEntry.objects.filter(idempotency_key=idempotency_key, status=Status.PENDING).first()
    if row is None:
        return 0
    changes: dict[str, str] = {"status": status}
    if stripe_object_id and stripe_object_id != row.stripe_object_id:
        other = ledger_entry_by_object(kind=row.kind, stripe_object_id=stripe_object_id)
        if other is not None and other.pk != row.pk:
            changes = {"status": Status.CANCELED, "reason": f"{row.reason} [recorded as {other.idempotency_key}]"[:500]}
        else:
            changes["stripe_object_id"] = stripe_object_id
    for name, value in changes.items():
        setattr(row, name, value)
    row.save(update_fields=[*changes, "updated_at"])  # save() keeps updated_at right
    return 1


def ledger_refund_status_set(*, stripe_refund_id: str, status: str) -> int:
    """Stripe reported a refund's new status (pending -> succeeded / failed / canceled, and a
    succeeded refund that failed afterwards: succeeded -> failed). Call with the order locked."""
    changed = 0
    rows = LedgerEntry.objects.filter(kind=Kind.REFUND, stripe_object_id=stripe_refund_id).exclude(status=status)
    for row in rows.exclude(status=Status.CANCELED):
        row.status = status
        row.save(update_fields=["status", "updated_at"])
        changed += 1
    return changed
