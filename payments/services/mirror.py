"""The dj-stripe mirror, off the request path: a Celery task per Stripe object, enqueued on commit.

The payment-session, card-token and saved-card services used to call ``gateway.mirror`` inline:
about half of a payment session's SQL statements, and a Stripe read of its own (dj-stripe fetches
an intent's Customer). They now call ``stripe_object_mirror_later(obj=...)``, which queues
``payments.tasks.stripe_object_mirror`` with the object's type and id once the caller's
transaction commits (at once outside one). The task reads the object's *current* state from
Stripe and mirrors it (``stripe_object_mirror``): tasks for the same object in any order, or run
twice, leave the latest state. A broker outage is logged, never raised: the mirror is a read-only
copy for staff; the payment, and the order placed with it, stand. Webhook handlers and the
reconciliation sweep keep mirroring what they read (they already run in the worker).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

from payments import gateway

logger = logging.getLogger(__name__)

# What the request path mirrors, and how the worker reads each one again.
_RETRIEVE: dict[str, Callable[..., dict[str, Any]]] = {
    "payment_intent": gateway.payment_intent_retrieve,
    "customer": gateway.customer_retrieve,
    "payment_method": gateway.payment_method_retrieve,
}


def stripe_object_mirror_later(*, obj: dict[str, Any]) -> None:
    """Queue the mirror of ``obj`` (a Stripe object the caller just read or wrote) after commit."""
    object_type, object_id = str(obj.get("object") or ""), str(obj.get("id") or "")
    if object_type not in _RETRIEVE or not object_id:
        logger.warning("stripe_mirror_skipped object=%s id=%s", object_type, object_id)
        return
    enqueue = functools.partial(_mirror_enqueue, object_type=object_type, object_id=object_id)
    transaction.on_commit(enqueue, robust=True)


def _mirror_enqueue(*, object_type: str, object_id: str) -> None:
    from payments import tasks  # tasks import services: keep the import one-way at module load

    try:
        tasks.stripe_object_mirror.delay(object_type, object_id)
    except Exception as exc:  # noqa: BLE001 - kombu raises OperationalError and friends
        logger.error(
            "stripe_mirror.enqueue_failed object=%s id=%s error=%s", object_type, object_id, type(exc).__name__
        )


def stripe_object_mirror(*, object_type: str, object_id: str) -> bool:
    """Read the object from Stripe and copy it into dj-stripe's tables; returns whether it was.

    Reads Stripe (never inside a transaction). Raises ``ApplicationError`` when Stripe cannot be
    read (the task logs it); a failed dj-stripe sync is logged by ``gateway.mirror``.
    """
    retrieve = _RETRIEVE.get(object_type)
    if retrieve is None:
        logger.warning("stripe_mirror_skipped object=%s id=%s", object_type, object_id)
        return False
    return gateway.mirror(retrieve(id=object_id))
