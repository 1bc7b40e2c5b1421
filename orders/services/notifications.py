"""The emails a shopper gets after the confirmation: shipped, delivered, canceled, refunded.

Outbox, then send once:

1. **Record** (``order_notification_record``, ``order_refund_notifications_record``): inside
   the transaction that records the fact, with the order row locked, one ``OrderNotification``
   row per email owed, keyed by ``notification_key`` (order, kind, object). A fact recorded
   again (a webhook replayed, the sweep, a retried staff action) finds its key and owes
   nothing more. After commit (``robust``) the ``orders.tasks.send_order_notification`` task
   is queued; a broker outage is logged, never raised: the row stays unsent and the
   ``orders.resend_notifications`` beat task sends it.
2. **Send** (``order_notification_send``): one conditional UPDATE claims the row (not sent, no
   claim or a lapsed one), the email goes out, ``sent_at`` is set. The claim is a lease like
   the confirmation's: undone if sending raises (the task retries), taken over once older
   than ``NOTIFICATION_CLAIM_LEASE`` if the worker died. Two workers, a task delivered twice
   or retried, and the sweep send one email between them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from common.actors import Actor
from orders.models import Order, OrderEvent, OrderNotification, OrderNotificationKind
from payments import ledger
from payments.models import LedgerEntryKind, LedgerEntryStatus

logger = logging.getLogger(__name__)

# A claim older than this belongs to a dead worker (one email is one SMTP round trip).
NOTIFICATION_CLAIM_LEASE = timedelta(minutes=10)
# Unsent rows older than this get no late email from the sweep (news that stale misleads).
NOTIFICATION_RESEND_WINDOW = timedelta(days=3)
# A succeeded refund is owed an email only if its ledger row changed this recently: refunds
# settled before these emails existed are not announced by the next sync of their order.
REFUND_NOTIFICATION_WINDOW = timedelta(days=3)


def notification_key(*, order_id: str, kind: str, object_id: str = "") -> str:
    """The one spelling of a notification's unique key: ``order:{id}:{kind}[:{object}]``."""
    return f"order:{order_id}:{kind}" + (f":{object_id}" if object_id else "")


@dataclass(frozen=True, slots=True)
class _Owed:
    kind: str
    object_id: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)


def _record(*, order: Order, owed: list[_Owed]) -> list[str]:
    """Insert the rows not recorded yet (two queries); after commit, queue their sends. Returns the new keys."""
    if not order.email or not owed:
        return []
    rows = {notification_key(order_id=order.id, kind=item.kind, object_id=item.object_id): item for item in owed}
    known = set(OrderNotification.objects.filter(key__in=list(rows)).values_list("key", flat=True))
    new = [key for key in rows if key not in known]
    if not new:
        return []
    OrderNotification.objects.bulk_create(
        [OrderNotification(order=order, kind=rows[key].kind, key=key, payload=dict(rows[key].payload)) for key in new],
        ignore_conflicts=True,  # never aborts the caller's transaction; the order lock serialises writers anyway
    )
    for key in new:
        transaction.on_commit(functools.partial(_notification_enqueue, key=key), robust=True)
    return new


def order_notification_record(
    *, order: Order, kind: str, object_id: str = "", payload: Mapping[str, Any] | None = None
) -> bool:
    """Owe the shopper one ``kind`` email for this fact. Call inside the transaction recording
    the fact, with the order locked. Returns whether it was newly owed."""
    if kind not in OrderNotificationKind.values:
        raise ValueError(f"unknown notification kind {kind!r}")
    return bool(_record(order=order, owed=[_Owed(kind=kind, object_id=object_id, payload=payload or {})]))


def order_refund_notifications_record(*, order: Order, now: datetime | None = None) -> list[str]:
    """Owe one ``refunded`` email per refund of the order that the ledger records as succeeded
    (and that changed within ``REFUND_NOTIFICATION_WINDOW``). Pending refunds owe nothing until
    they succeed; a later call (the sync that learns it) records them then. Call with the order
    locked, after the ledger rows were written. Returns the new keys."""
    now = now or timezone.now()
    refunds = (
        ledger.ledger_entries(payment_intent_id=order.payment_intent_id)
        .filter(kind=LedgerEntryKind.REFUND, status=LedgerEntryStatus.SUCCEEDED, order_id=order.id)
        .filter(updated_at__gte=now - REFUND_NOTIFICATION_WINDOW)
    )
    owed = [
        _Owed(
            kind=OrderNotificationKind.REFUNDED,
            object_id=row.idempotency_key,
            payload={"amount": row.amount, "currency_code": row.currency_code, "refund_id": row.stripe_object_id},
        )
        for row in refunds
    ]
    return _record(order=order, owed=owed)


def _notification_enqueue(*, key: str) -> None:
    """After commit: queue the send. A broker outage is logged, never raised: the beat sweep sends it."""
    from orders import tasks  # tasks import services: keep the import one-way at module load

    try:
        tasks.send_order_notification.delay(key)
    except Exception as exc:  # noqa: BLE001 - kombu raises OperationalError and friends
        logger.error("order.notification_enqueue_failed key=%s error=%s", key, type(exc).__name__)


def _claim(*, key: str, now: datetime) -> bool:
    """One conditional UPDATE: not sent, and no claim or only a lapsed one."""
    return bool(
        OrderNotification.objects.filter(key=key, sent_at__isnull=True)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lte=now - NOTIFICATION_CLAIM_LEASE))
        .update(claimed_at=now)
    )


def order_notification_send(*, key: str, now: datetime | None = None) -> bool:
    """Send the email of one notification row, once. Returns whether this call sent it.

    ``now`` is the claim's timestamp (for the sweep and the tests of a lapsed lease).
    """
    from orders import emails

    now = now or timezone.now()
    if not _claim(key=key, now=now):
        return False
    notification = OrderNotification.objects.select_related("order").get(key=key)
    order = notification.order
    try:
        emails.order_notification_email(order=order, notification=notification).send()
    except Exception:
        OrderNotification.objects.filter(key=key, claimed_at=now).update(claimed_at=None)
        raise
    OrderNotification.objects.filter(key=key).update(sent_at=timezone.now())
    OrderEvent.objects.create(
        order=order,
        type="notification_sent",
        actor=Actor.SYSTEM,
        payload={"kind": notification.kind, "key": key, "to": "customer"},
    )
    logger.info(
        "order.notification_sent order_id=%s display_id=%s kind=%s key=%s",
        *(order.id, order.display_id, notification.kind, key),
    )
    return True


def order_notifications_resend(*, older_than: timedelta, now: datetime | None = None) -> int:
    """Beat: send the notifications owed for longer than ``older_than`` (the task queued at
    commit never ran: broker down, worker killed) and at most ``NOTIFICATION_RESEND_WINDOW``
    old, not claimed by a live attempt. One failure never stops the sweep. Returns how many were sent."""
    now = now or timezone.now()
    keys = list(
        OrderNotification.objects.filter(
            sent_at__isnull=True,
            created_at__lte=now - older_than,
            created_at__gte=now - NOTIFICATION_RESEND_WINDOW,
        )
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lte=now - NOTIFICATION_CLAIM_LEASE))
        .order_by("created_at", "id")
        .values_list("key", flat=True)
    )
    sent = 0
    for key in keys:
        try:
            sent += order_notification_send(key=key, now=now)
        except Exception:  # noqa: BLE001 - one bad row never stops the sweep; retried next run
            logger.exception("order.notification_resend_failed key=%s", key)
    if keys:
        logger.warning("order.notifications_resent candidates=%d sent=%d", len(keys), sent)
    return sent
