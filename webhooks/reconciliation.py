"""Converge our payment state on Stripe's, for one PaymentIntent or for every recent one.

``payment_intent_reconcile`` is the single place that decides what a PaymentIntent's
current state means for us; the webhook handlers and the ``reconcile_payments`` sweep
both call it. It re-reads the PaymentIntent from Stripe (never an event snapshot), so the
result does not depend on which event arrived first, or how often:

* paid (``requires_capture``/``succeeded``) and no order -> ``order_place`` (the same
  placement service as the storefront's ``complete``; if the cart can no longer be
  fulfilled, or its total no longer matches the authorized amount, it cancels or refunds the
  payment itself and files a CheckoutIncident), then ``order_payment_sync``; if the
  cart's order turns out to be paid by *another* PaymentIntent, this one's money is released
  (``order_orphan_payment_release``: cancel or refund, CheckoutIncident, staff alert);
* paid, no order, and a CheckoutIncident on file: skipped once the money was released; an
  ``action_failed`` incident (the cancel/refund failed, e.g. Stripe down) is retried with the
  same idempotency keys (``checkout_incident_release_retry``) until it goes through;
* an order exists -> ``order_payment_sync`` (captures, refunds, voids from Stripe into the
  ledger and ``payment_status``);
* not paid, no order -> the payment session follows the intent (``payment_session_fail``
  releases the stock hold after a decline).

Everything it calls is idempotent and takes its own locks, so it is safe to run while
webhooks flow, any number of times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from common import metrics
from common.actors import Actor
from common.errors import ApplicationError, Conflict, ProviderUnavailable, ServiceUnavailable
from orders import selectors as order_selectors
from orders import services as order_services
from orders.models import CheckoutIncidentResolution
from payments import disputes, gateway, ledger
from payments import selectors as payment_selectors
from payments import services as payment_services
from payments.models import PaymentSession, PaymentSessionStatus

logger = logging.getLogger(__name__)

PAID_STATUSES = frozenset({"requires_capture", "succeeded"})
# Order payment states the sweep leaves alone: a canceled authorization (nothing was ever
# captured) cannot move any more. A refunded order is still swept within the window: a refund
# can fail after it succeeded (the money comes back) and a dispute can come later.
FINAL_PAYMENT_STATUSES = frozenset({"canceled"})


class NeedsAttention(ApplicationError):
    """A PaymentIntent we cannot converge automatically: staff must look (no retry helps)."""

    http_status = 409
    code = "payment_needs_attention"


def is_transient(error: Exception) -> bool:
    """Whether retrying later may succeed (another request holds the cart or is releasing the
    payment, Stripe unreachable)."""
    if isinstance(error, (ProviderUnavailable, ServiceUnavailable)):
        return True
    return isinstance(error, Conflict) and error.code in ("cart_completing", "payment_release_in_progress")


@dataclass(frozen=True)
class Outcome:
    payment_intent_id: str
    # order_created | order_updated | session_updated | session_failed | unchanged | ignored | unfulfillable
    # | orphan_released (a second paid intent of a completed cart: canceled or refunded, incident filed)
    # | incident_released (an action_failed incident's money released on a retry)
    action: str
    order_id: str = ""
    detail: str = ""

    @property
    def changed(self) -> bool:
        return self.action in (
            "order_created",
            "order_updated",
            "session_updated",
            "session_failed",
            "unfulfillable",
            "orphan_released",
            "incident_released",
        )

    def describe(self) -> str:
        parts = [self.action, self.payment_intent_id]
        if self.order_id:
            parts.append(f"order={self.order_id}")
        if self.detail:
            parts.append(self.detail)
        return " ".join(parts)


def _order_snapshot(order_id: str, payment_intent_id: str, *, order: Any = None) -> tuple[Any, ...]:
    """What a sync may change: the order's states and the ledger's totals (``order``: already read now)."""
    order = order if order is not None else order_selectors.order_get(order_id=order_id)
    totals = ledger.ledger_totals(payment_intent_id=payment_intent_id)
    return (order.status, order.payment_status, order.fulfillment_status, totals)


def _incidents(*, session: PaymentSession, payment_intent_id: str) -> list[Any]:
    return [
        incident
        for incident in order_selectors.checkout_incidents(cart_id=session.cart_id)
        if incident.payment_intent_id == payment_intent_id
    ]


def payment_intent_reconcile(*, payment_intent_id: str, actor: str = Actor.STRIPE) -> Outcome:
    """Bring our order / ledger / payment session for this PaymentIntent in line with Stripe.

    Raises transient errors (``is_transient``) for the caller to retry, and ``NeedsAttention``
    when the intent is paid but cannot become an order for a reason that retrying won't fix.
    """
    session = payment_selectors.payment_session_get_by_intent(payment_intent_id=payment_intent_id)
    if session is None:
        return Outcome(payment_intent_id, "ignored", detail="not a PaymentIntent of this shop")
    payment_intent = gateway.payment_intent_retrieve(id=payment_intent_id)
    try:
        return _converge(session=session, payment_intent=payment_intent, actor=actor)
    finally:
        gateway.mirror(payment_intent)  # dj-stripe's copy; after the work, it is not on the critical path


def _converge(*, session: PaymentSession, payment_intent: dict[str, Any], actor: str) -> Outcome:
    payment_intent_id = payment_intent["id"]
    status = payment_intent.get("status")
    order = order_selectors.order_get_by_payment_intent(payment_intent_id=payment_intent_id)

    incidents = _incidents(session=session, payment_intent_id=payment_intent_id) if order is None else []
    if any(i.resolution == CheckoutIncidentResolution.ACTION_FAILED for i in incidents):
        # Releasing its money failed (Stripe unreachable or refusing at the time; or it went
        # through and the answer was lost, then the intent shows canceled): try again, same keys.
        incident = order_services.checkout_incident_release_retry(payment_intent=payment_intent, actor=actor)
        if incident is not None and incident.resolution != CheckoutIncidentResolution.ACTION_FAILED:
            return Outcome(payment_intent_id, "incident_released", detail=f"resolution={incident.resolution}")
        if status in PAID_STATUSES or incident is not None:
            return Outcome(payment_intent_id, "unchanged", detail="checkout incident on file (release failed again)")

    if order is None and status in PAID_STATUSES:
        if incidents:
            return Outcome(payment_intent_id, "unchanged", detail="checkout incident on file (payment released)")
        try:
            order, created = order_services.order_place(
                cart_id=session.cart_id, payment_intent_id=payment_intent_id, actor=actor
            )
        except ApplicationError as exc:
            if is_transient(exc):
                raise
            if exc.code in ("insufficient_inventory", "amount_mismatch"):
                # order_place released the payment (cancel or refund), retired its session and
                # filed a CheckoutIncident (out of stock, or the cart changed after authorization).
                return Outcome(payment_intent_id, "unfulfillable", detail=exc.message)
            raise NeedsAttention(
                f"Paid PaymentIntent {payment_intent_id} (cart {session.cart_id}) cannot become an order: "
                f"{exc.code}: {exc.message}"
            ) from exc
        if order.payment_intent_id != payment_intent_id:
            # The cart's order is paid by another PaymentIntent (e.g. this one belonged to a
            # replaced session and was confirmed anyway): this money is no order's. Release it.
            incident, filed = order_services.order_orphan_payment_release(
                order_id=order.id, payment_intent=payment_intent, actor=actor
            )
            action = "orphan_released" if filed else "unchanged"
            return Outcome(payment_intent_id, action, order_id=order.id, detail=f"resolution={incident.resolution}")
        order_services.order_payment_sync(payment_intent_id=payment_intent_id, actor=actor)
        payment_services.payment_session_sync_from_intent(payment_intent=payment_intent)
        _disputes_link(payment_intent_id=payment_intent_id, order_id=order.id, actor=actor)
        if created:
            return Outcome(payment_intent_id, "order_created", order_id=order.id)
        return Outcome(payment_intent_id, "unchanged", order_id=order.id)

    if order is not None:
        before = (*_order_snapshot(order.id, payment_intent_id, order=order), session.status)  # just read
        order_services.order_payment_sync(payment_intent_id=payment_intent_id, actor=actor)
        synced = payment_services.payment_session_sync_from_intent(payment_intent=payment_intent)
        linked = _disputes_link(payment_intent_id=payment_intent_id, order_id=order.id, actor=actor)
        after = (*_order_snapshot(order.id, payment_intent_id), synced.status if synced else session.status)
        if before == after and not linked:
            return Outcome(payment_intent_id, "unchanged", order_id=order.id)
        detail = f"payment_status={before[1]}->{after[1]}"
        if linked:
            detail += f" disputes_linked={','.join(linked)}"
        return Outcome(payment_intent_id, "order_updated", order_id=order.id, detail=detail)

    previous = session.status
    if status == "requires_payment_method" and payment_intent.get("last_payment_error"):
        # Once per failed charge, whether or not the session was marked failed already.
        payment_services.payment_attempt_record_from_intent(payment_intent=payment_intent, session=session)
        if previous == PaymentSessionStatus.FAILED:
            return Outcome(payment_intent_id, "unchanged")
        payment_services.payment_session_fail(payment_intent_id=payment_intent_id)
        return Outcome(payment_intent_id, "session_failed", detail=f"session {previous}->failed")
    updated = payment_services.payment_session_sync_from_intent(payment_intent=payment_intent)
    if updated is not None and updated.status != previous:
        return Outcome(payment_intent_id, "session_updated", detail=f"session {previous}->{updated.status}")
    return Outcome(payment_intent_id, "unchanged")


def _disputes_link(*, payment_intent_id: str, order_id: str, actor: str) -> list[str]:
    """Disputes stored before the order existed (their events came first): attach them to it."""
    linked = disputes.dispute_link_order(payment_intent_id=payment_intent_id, order_id=order_id)
    for dispute in linked:
        order_services.order_dispute_record(
            order_id=order_id, dispute_id=dispute.stripe_dispute_id, created=True, changed=[], actor=actor
        )
    return [dispute.stripe_dispute_id for dispute in linked]


# --- The sweep ----------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    checked: int = 0
    fixes: list[Outcome] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (payment intent, message)


def payment_sessions_to_reconcile(
    *, now: datetime | None = None, window: timedelta | None = None, grace: timedelta | None = None
) -> list[PaymentSession]:
    """Recent sessions with an intent whose state may still lag Stripe's.

    Created in ``[now - RECONCILE_WINDOW, now - RECONCILE_GRACE]`` (the grace leaves
    in-flight checkouts alone), not canceled, and without an order whose authorization was
    canceled (``FINAL_PAYMENT_STATUSES``; refunded orders are still swept).
    """
    now = now or timezone.now()
    window = settings.RECONCILE_WINDOW if window is None else window
    grace = settings.RECONCILE_GRACE if grace is None else grace
    sessions = list(
        PaymentSession.objects.filter(
            payment_intent_id__isnull=False,
            created_at__gte=now - window,
            created_at__lte=now - grace,
        )
        .exclude(status=PaymentSessionStatus.CANCELED)
        .order_by("created_at", "id")
    )
    settled = set(
        order_selectors.order_queryset()
        .filter(
            payment_intent_id__in=[s.payment_intent_id for s in sessions],
            payment_status__in=FINAL_PAYMENT_STATUSES,
        )
        .values_list("payment_intent_id", flat=True)
    )
    return [s for s in sessions if s.payment_intent_id not in settled]


def payments_reconcile(
    *, now: datetime | None = None, window: timedelta | None = None, grace: timedelta | None = None
) -> ReconcileReport:
    """Reconcile every candidate session; one failure never stops the sweep."""
    report = ReconcileReport()
    for session in payment_sessions_to_reconcile(now=now, window=window, grace=grace):
        assert session.payment_intent_id is not None
        report.checked += 1
        try:
            outcome = payment_intent_reconcile(payment_intent_id=session.payment_intent_id, actor=Actor.SYSTEM)
        except ApplicationError as exc:
            report.errors.append((session.payment_intent_id, f"{exc.code}: {exc.message}"))
            logger.error(
                "reconcile.error payment_intent_id=%s cart_id=%s code=%s message=%s",
                session.payment_intent_id,
                session.cart_id,
                exc.code,
                exc.message,
            )
            continue
        if outcome.changed:
            report.fixes.append(outcome)
            metrics.record_reconciliation_fix(kind=outcome.action)
            logger.warning("reconcile.fixed %s", outcome.describe())
    logger.info("reconcile.done checked=%d fixed=%d errors=%d", report.checked, len(report.fixes), len(report.errors))
    return report
