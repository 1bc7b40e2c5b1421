"""The order confirmation email: sent once per order, from a Celery task enqueued on commit,
and by the ``orders.resend_confirmations`` beat task for the ones that task never sent.

The claim on sending is a **lease** (``Order.confirmation_claimed_at``), not a one-way flag:
a worker killed between claiming and sending leaves a claim that another attempt may take
once it is older than ``CONFIRMATION_CLAIM_LEASE``. ``confirmation_sent_at`` is set only after
the email went out.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from common.actors import Actor
from orders import selectors
from orders.models import Order, OrderEvent, OrderStatus

logger = logging.getLogger(__name__)

# A claim older than this is taken to belong to a dead worker: sending (one email, one SMTP
# round trip) never takes this long.
CONFIRMATION_CLAIM_LEASE = timedelta(minutes=10)
# Orders placed longer ago than this get no late confirmation from the resend sweep.
CONFIRMATION_RESEND_WINDOW = timedelta(days=3)


def _claim(*, order_id: str, now: datetime) -> bool:
    """One conditional UPDATE: not sent, and no claim or only a lapsed one."""
    return bool(
        Order.objects.filter(pk=order_id, confirmation_sent_at__isnull=True)
        .filter(
            Q(confirmation_claimed_at__isnull=True) | Q(confirmation_claimed_at__lte=now - CONFIRMATION_CLAIM_LEASE)
        )
        .update(confirmation_claimed_at=now)
    )


def order_confirmation_send(*, order_id: str, now: datetime | None = None) -> bool:
    """Send the confirmation email once. Returns whether this call sent it.

    The claim (``confirmation_claimed_at``) is an atomic conditional UPDATE, so two workers (a
    task retried, delivered twice, the resend sweep) cannot both send while it is fresh. If
    sending raises, the claim is undone so the task's retry can send; if the worker dies
    instead, the claim lapses after ``CONFIRMATION_CLAIM_LEASE``. ``now`` is for the sweep.
    """
    from orders import emails

    now = now or timezone.now()
    if not _claim(order_id=order_id, now=now):
        return False
    order = selectors.order_get(order_id=order_id)
    try:
        emails.order_confirmation_email(order=order).send()
    except Exception:
        Order.objects.filter(pk=order_id, confirmation_claimed_at=now).update(confirmation_claimed_at=None)
        raise
    Order.objects.filter(pk=order_id).update(confirmation_sent_at=timezone.now())
    OrderEvent.objects.create(order=order, type="confirmation_sent", actor=Actor.SYSTEM, payload={"to": "customer"})
    logger.info("order.confirmation_sent order_id=%s display_id=%s", order.id, order.display_id)
    return True


def order_confirmations_resend(*, older_than: timedelta, now: datetime | None = None) -> int:
    """Beat: send the confirmations of placed orders that none was sent for. Returns how many were sent.

    Orders placed more than ``older_than`` ago (younger ones are left to the task enqueued at
    placement) and within ``CONFIRMATION_RESEND_WINDOW``, not canceled, not sent, and not
    claimed by a live attempt (a lapsed lease is taken over). One failure never stops the
    sweep: it is logged and the order is tried again on the next run.
    """
    now = now or timezone.now()
    order_ids = list(
        Order.objects.filter(
            confirmation_sent_at__isnull=True,
            created_at__lte=now - older_than,
            created_at__gte=now - CONFIRMATION_RESEND_WINDOW,
        )
        .exclude(status=OrderStatus.CANCELED)
        .exclude(email="")
        .filter(
            Q(confirmation_claimed_at__isnull=True) | Q(confirmation_claimed_at__lte=now - CONFIRMATION_CLAIM_LEASE)
        )
        .order_by("created_at")
        .values_list("id", flat=True)
    )
    sent = 0
    for order_id in order_ids:
        try:
            sent += order_confirmation_send(order_id=order_id, now=now)
        except Exception:  # noqa: BLE001 - one bad order never stops the sweep; retried next run
            logger.exception("order.confirmation_resend_failed order_id=%s", order_id)
    if order_ids:
        logger.warning("order.confirmations_resent candidates=%d sent=%d", len(order_ids), sent)
    return sent
