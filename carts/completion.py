"""Cart status moves of checkout completion, for ``orders.services.order_place`` (carts never imports orders).

The caller holds the cart row lock (``carts.services.cart_lock``) for begin/finish.
``completing_since`` is the completion attempt's token: only the attempt that set it may
finish it or put the cart back (``cart_completion_abort``: to ``active``, or ``expired`` if it
expired meanwhile or before). Lock order: cart row first.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db.models import Case, Value, When
from django.utils import timezone

from carts.models import Cart, CartStatus

logger = logging.getLogger(__name__)


def cart_completion_begin(*, cart: Cart, now: datetime) -> None:
    """Mark a locked cart ``completing``: writes are refused with 409 ``cart_completing`` until it ends."""
    cart.status = CartStatus.COMPLETING
    cart.completing_since = now
    cart.save(update_fields=["status", "completing_since", "updated_at"])


def cart_completion_finish(*, cart: Cart, now: datetime) -> None:
    """Mark a locked cart ``completed``; from now on it is read-only."""
    cart.status = CartStatus.COMPLETED
    cart.completed_at = now
    cart.completing_since = None
    cart.save(update_fields=["status", "completed_at", "completing_since", "updated_at"])


def cart_completion_abort(*, cart_id: str, since: datetime) -> bool:
    """Put the cart back to the status it had if the attempt that started at ``since`` still owns it.

    Completion starts from ``active`` or ``expired`` (a paid cart completes after it expired);
    nothing else moves ``expires_at``, so the status it had is ``expired`` once ``expires_at``
    has passed (an expired cart stays expired, never becomes writable again) and ``active``
    before. One conditional UPDATE (atomic on its own): an attempt that was overtaken after the
    completing timeout cannot undo the attempt that took over.
    """
    now = timezone.now()
    updated = Cart.objects.filter(pk=cart_id, status=CartStatus.COMPLETING, completing_since=since).update(
        status=Case(When(expires_at__lte=now, then=Value(CartStatus.EXPIRED)), default=Value(CartStatus.ACTIVE)),
        completing_since=None,
        updated_at=now,
    )
    if updated:
        logger.info("cart.completion_aborted cart_id=%s", cart_id)
    return bool(updated)
