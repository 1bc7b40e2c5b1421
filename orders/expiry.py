"""Authorization expiry warnings (beat task ``orders.warn_expiring_authorizations``).

An uncaptured card authorization lapses at ``capture_before`` (or authorized + 7 days when
Stripe did not say); after that the money can no longer be captured. Every run writes one
warning ``OrderEvent`` (``authorization_expiring``) per order whose authorization lapses
within 24 h, once per order and expiry time, and logs it, so staff see it on the order page
and in the logs. The admin list marks the same orders (filter "Authorization expiring").

The expiry rule itself (``authorization_expires_expression`` in SQL, ``authorization_expires_at``
for a loaded order) and the reads built on it live here too, so the beat task and the back
office (``backoffice/``) share one definition.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.actors import Actor
from orders.models import Order, OrderEvent, PaymentStatus

logger = logging.getLogger(__name__)

EVENT_TYPE = "authorization_expiring"

# Stripe holds a card authorization for 7 days unless the charge tells us otherwise
# (``capture_before``); the same rule as orders.services.AUTHORIZATION_VALIDITY.
AUTHORIZATION_VALIDITY = timedelta(days=7)
# The admin list marks, and the beat task warns about, authorizations expiring within this window.
EXPIRY_WARNING_WINDOW = timedelta(hours=24)


def authorization_expires_expression() -> Coalesce:
    """When the order's authorization lapses: ``capture_before``, else authorized + 7 days (SQL)."""
    return Coalesce(
        F("capture_before"),
        ExpressionWrapper(F("authorized_at") + Value(AUTHORIZATION_VALIDITY), output_field=DateTimeField()),
        output_field=DateTimeField(),
    )


def authorization_expires_at(*, order: Order) -> datetime | None:
    """The same rule as :func:`authorization_expires_expression`, for one loaded order."""
    if order.capture_before is not None:
        return order.capture_before
    if order.authorized_at is not None:
        return order.authorized_at + AUTHORIZATION_VALIDITY
    return None


def orders_awaiting_capture() -> QuerySet[Order]:
    """Orders holding an uncaptured authorization, with ``authorization_expires_at``."""
    return Order.objects.filter(payment_status=PaymentStatus.AUTHORIZED).annotate(
        authorization_expires_at=authorization_expires_expression()
    )


def orders_authorization_expiring(
    *, now: datetime | None = None, within: timedelta = EXPIRY_WARNING_WINDOW
) -> QuerySet[Order]:
    """Authorizations that lapse within ``within`` from now (or have lapsed and are still uncaptured)."""
    now = now or timezone.now()
    return orders_awaiting_capture().filter(authorization_expires_at__lte=now + within)  # type: ignore[misc]  # annotated


def order_authorizations_expiry_warn(*, now: datetime | None = None, within: timedelta = EXPIRY_WARNING_WINDOW) -> int:
    """Write a warning event for each authorization lapsing within ``within``; returns how many."""
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(
            orders_authorization_expiring(now=now, within=within)
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("authorization_expires_at", "pk")  # type: ignore[misc]  # annotated by the selector
            .values("pk", "display_id", "total", "currency_code", "authorization_expires_at")
        )
        fresh = [(row, row["authorization_expires_at"].isoformat()) for row in rows]
        if not fresh:
            return 0
        # One warning per order and expiry time (a re-authorization would warn again).
        seen = set(
            OrderEvent.objects.filter(order_id__in=[row["pk"] for row, _ in fresh], type=EVENT_TYPE).values_list(
                "order_id", "payload__expires_at"
            )
        )
        events = []
        for row, expires_text in fresh:
            if (row["pk"], expires_text) in seen:
                continue
            left = row["authorization_expires_at"] - now
            events.append(
                OrderEvent(
                    order_id=row["pk"],
                    type=EVENT_TYPE,
                    actor=Actor.SYSTEM,
                    payload={
                        "level": "warning",
                        "expires_at": expires_text,
                        "expired": left <= timedelta(0),
                        "hours_left": max(int(left.total_seconds() // 3600), 0),
                        "amount": row["total"],
                        "currency_code": row["currency_code"],
                    },
                )
            )
        OrderEvent.objects.bulk_create(events)
    for event in events:
        logger.warning(
            "order.authorization_expiring order_id=%s expires_at=%s expired=%s amount=%s currency=%s",
            event.order_id,
            event.payload["expires_at"],
            event.payload["expired"],
            event.payload["amount"],
            event.payload["currency_code"],
        )
    return len(events)
