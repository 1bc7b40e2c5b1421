"""Authorization expiry warnings (beat task ``orders.warn_expiring_authorizations``).

An uncaptured card authorization lapses at ``capture_before`` (or authorized + 7 days when
Stripe did not say); after that the money can no longer be captured. Every run writes one
warning ``OrderEvent`` (``authorization_expiring``) per order whose authorization lapses
within 24 h, once per order and expiry time, and logs it, so staff see it on the order page
and in the logs. The admin list marks the same orders (filter "Authorization expiring").
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from common.actors import Actor
from orders.models import OrderEvent
from orders.selectors_admin import EXPIRY_WARNING_WINDOW, orders_authorization_expiring

logger = logging.getLogger(__name__)

EVENT_TYPE = "authorization_expiring"


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
