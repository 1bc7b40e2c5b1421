"""Paid but no order of its own: release the money (cancel or refund), file a CheckoutIncident for staff.

Out of stock at completion (``incident_oversold``), the cart changed after its authorization
(``incident_amount_mismatch``), or a second PaymentIntent of a completed cart
(``order_orphan_payment_release``). A release that failed (Stripe unreachable or refusing)
is an ``action_failed`` incident that reconciliation retries with the same keys
(``checkout_incident_release_retry``).

Every function here runs outside any transaction (it calls Stripe) with deterministic
idempotency keys, and writes its rows in a short transaction afterwards.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from carts import completion as cart_completion
from carts import services as cart_services
from catalog import services as catalog_services
from common.actors import Actor
from common.errors import (
    ApplicationError,
    Conflict,
    InsufficientInventory,
    ProviderUnavailable,
    ServiceUnavailable,
)
from orders.models import CheckoutIncident, CheckoutIncidentKind, CheckoutIncidentResolution, Order
from orders.services.core import event_record, order_lock, placement_ledger, refund_status_of
from payments import gateway, ledger
from payments import services as payment_services
from payments.ledger import LedgerEntryData
from payments.models import LedgerEntryKind, LedgerEntryStatus, PaymentSessionStatus

logger = logging.getLogger(__name__)


# What each kind of unplaceable payment's release keys are named after (``pi:{pi}:cancel:{tag}``).
_RELEASE_TAGS: dict[str, str] = {
    CheckoutIncidentKind.INSUFFICIENT_INVENTORY: "oos",
    CheckoutIncidentKind.AMOUNT_MISMATCH: "amount_mismatch",
}


def _release_keys(*, payment_intent_id: str, kind: str) -> tuple[str, str]:
    """The (cancel, refund) idempotency keys of releasing this intent's money for ``kind``: one
    name per release, so a retry (reconciliation) sends the same key as the first attempt."""
    tag = _RELEASE_TAGS[kind]
    return (
        ledger.key_release(payment_intent_id=payment_intent_id, op="cancel", tag=tag),
        ledger.key_release(payment_intent_id=payment_intent_id, op="refund", tag=tag),
    )


def _release_call(*, payment_intent: dict[str, Any], cart_id: str, kind: str) -> tuple[str, list[LedgerEntryData], str]:
    """Cancel the authorization or refund the payment; outside any transaction.

    Returns (resolution, the ledger rows of the release, the refusal's error code or "").
    An intent that Stripe shows canceled already (a retry after an answer that was lost) is
    released; anything Stripe refuses, or an unreachable Stripe, is ``action_failed``.
    """
    pi_id = payment_intent["id"]
    amount = int(payment_intent["amount"])
    currency = str(payment_intent["currency"]).lower()
    cancel_key, refund_key = _release_keys(payment_intent_id=pi_id, kind=kind)
    void = LedgerEntryData(
        payment_intent_id=pi_id,
        kind=LedgerEntryKind.VOID,
        amount=amount,
        currency_code=currency,
        idempotency_key=ledger.key_void(payment_intent_id=pi_id),
        actor=Actor.SYSTEM,
        reason=kind,
    )
    status = payment_intent.get("status")
    try:
        if status == "canceled":
            return CheckoutIncidentResolution.PAYMENT_CANCELED, [void], ""
        if status == "requires_capture":
            gateway.payment_intent_cancel(id=pi_id, idempotency_key=cancel_key)
            return CheckoutIncidentResolution.PAYMENT_CANCELED, [void], ""
        result = gateway.refund_create(
            payment_intent=pi_id, metadata={"cart_id": cart_id, "reason": kind}, idempotency_key=refund_key
        )
    except ApplicationError as exc:
        return CheckoutIncidentResolution.ACTION_FAILED, [], exc.code
    refund = LedgerEntryData(
        payment_intent_id=pi_id,
        kind=LedgerEntryKind.REFUND,
        amount=int(result.get("amount") or amount),
        currency_code=currency,
        idempotency_key=ledger.key_refund(refund_id=str(result["id"])),
        stripe_object_id=str(result["id"]),
        status=refund_status_of(result),
        actor=Actor.SYSTEM,
        reason=kind,
    )
    return CheckoutIncidentResolution.PAYMENT_REFUNDED, [refund], ""


def _release_record(*, payment_intent: dict[str, Any], entries: list[LedgerEntryData], actor: str) -> None:
    """Inside a transaction: the authorization and its release in the ledger, the session retired.

    The money is back with the shopper: the next payment-session call creates a fresh
    PaymentIntent (a refunded intent still says "succeeded", and a canceled one cannot be paid
    again).
    """
    ledger.ledger_entries_record(
        entries=[*placement_ledger(payment_intent=payment_intent, order_id="", actor=actor), *entries]
    )
    payment_services.payment_session_release(
        payment_intent_id=payment_intent["id"], status=PaymentSessionStatus.CANCELED
    )


def _unplaceable(
    *,
    cart_id: str,
    since: datetime,
    payment_intent: dict[str, Any],
    error: ApplicationError,
    kind: str,
    actor: str,
) -> None:
    """Paid but it cannot become the cart's order (out of stock, or the cart changed after the
    authorization): release the money, tell staff, give the cart back. Outside any transaction.

    ``error`` is the answer the caller raises next; its message says what happened to the money.
    """
    pi_id = payment_intent["id"]
    amount = int(payment_intent["amount"])
    currency = str(payment_intent["currency"]).lower()
    resolution, entries, refusal = _release_call(payment_intent=payment_intent, cart_id=cart_id, kind=kind)
    detail = error.message
    if refusal:
        detail = (
            f"{detail} Releasing the payment failed ({refusal}); reconciliation retries it, "
            f"else staff must cancel or refund {pi_id}."
        )
    with transaction.atomic():
        if entries:
            _release_record(payment_intent=payment_intent, entries=entries, actor=actor)
        CheckoutIncident.objects.create(
            kind=kind,
            cart_id=cart_id,
            payment_intent_id=pi_id,
            variant_id=(error.param or "") if kind == CheckoutIncidentKind.INSUFFICIENT_INVENTORY else "",
            amount=amount,
            currency_code=currency,
            resolution=resolution,
            detail=detail[:500],
            actor=actor,
        )
    cart_completion.cart_completion_abort(cart_id=cart_id, since=since)
    if kind == CheckoutIncidentKind.INSUFFICIENT_INVENTORY:
        catalog_services.stock_release(cart_id=cart_id)  # the shopper must lower the quantity first
    logger.warning(
        "checkout.incident kind=%s cart_id=%s payment_intent_id=%s variant_id=%s "
        "amount=%s currency=%s resolution=%s actor=%s",
        kind,
        cart_id,
        pi_id,
        error.param or "",
        amount,
        currency,
        resolution,
        actor,
    )
    outcomes: dict[str, str] = {
        CheckoutIncidentResolution.PAYMENT_CANCELED: " Your payment authorization was released.",
        CheckoutIncidentResolution.PAYMENT_REFUNDED: " Your payment was refunded.",
    }
    error.message = f"{error.message} No order was placed.{outcomes.get(resolution, '')}"


def incident_oversold(
    *, cart_id: str, since: datetime, payment_intent: dict[str, Any], error: InsufficientInventory, actor: str
) -> None:
    """Paid but not fulfillable: release the money, tell staff, give the cart back. Outside any transaction."""
    _unplaceable(
        cart_id=cart_id,
        since=since,
        payment_intent=payment_intent,
        error=error,
        kind=CheckoutIncidentKind.INSUFFICIENT_INVENTORY,
        actor=actor,
    )


def incident_amount_mismatch(
    *, cart_id: str, since: datetime, payment_intent: dict[str, Any], error: ApplicationError, actor: str
) -> None:
    """The cart changed after its payment was authorized: that PaymentIntent can no longer be
    the cart's order (an authorized amount cannot be changed), so its money is released like an
    oversold cart's; the shopper pays the new total with a fresh PaymentIntent."""
    _unplaceable(
        cart_id=cart_id,
        since=since,
        payment_intent=payment_intent,
        error=error,
        kind=CheckoutIncidentKind.AMOUNT_MISMATCH,
        actor=actor,
    )


# --- Retrying a release that failed -----------------------------------------------------------


def checkout_incident_release_retry(
    *, payment_intent: dict[str, Any], actor: str = Actor.SYSTEM
) -> CheckoutIncident | None:
    """Reconciliation: release again the money of an ``action_failed`` incident (out of stock or
    amount mismatch), with the same idempotency keys as the first attempt. Calls Stripe: never
    inside a transaction.

    Returns the incident (its ``resolution`` updated when the release went through now), or
    ``None`` when the intent has no such incident. Idempotent: a concurrent retry finds the
    incident resolved under its row lock and records nothing twice (the ledger keys are unique).
    """
    pi_id = payment_intent["id"]
    incident = (
        CheckoutIncident.objects.filter(
            payment_intent_id=pi_id, kind__in=tuple(_RELEASE_TAGS), resolution=CheckoutIncidentResolution.ACTION_FAILED
        )
        .order_by("created_at")
        .first()
    )
    if incident is None:
        return None
    resolution, entries, refusal = _release_call(
        payment_intent=payment_intent, cart_id=incident.cart_id, kind=incident.kind
    )
    if resolution == CheckoutIncidentResolution.ACTION_FAILED:
        logger.warning(
            "checkout.incident_release_failed incident_id=%s payment_intent_id=%s code=%s", incident.pk, pi_id, refusal
        )
        return incident
    with transaction.atomic():
        incident = CheckoutIncident.objects.select_for_update().get(pk=incident.pk)
        if incident.resolution != CheckoutIncidentResolution.ACTION_FAILED:
            return incident  # another retry recorded it first
        _release_record(payment_intent=payment_intent, entries=entries, actor=actor)
        incident.resolution = resolution
        incident.detail = f"{incident.detail} Released by reconciliation ({resolution}).".strip()[:500]
        incident.save(update_fields=["resolution", "detail"])
    logger.warning(
        "checkout.incident_released incident_id=%s kind=%s cart_id=%s payment_intent_id=%s resolution=%s actor=%s",
        incident.pk,
        incident.kind,
        incident.cart_id,
        pi_id,
        resolution,
        actor,
    )
    return incident


# --- A second PaymentIntent of a completed cart -----------------------------------------------


class ReleaseInProgress(Conflict):
    """Another worker is releasing this payment right now: retry later (transient)."""

    code = "payment_release_in_progress"
    default_message = "Releasing this payment is in progress."


def order_orphan_payment_release(
    *, order_id: str, payment_intent: dict[str, Any], actor: str = Actor.STRIPE
) -> tuple[CheckoutIncident, bool]:
    """A paid PaymentIntent of a cart whose order another PaymentIntent pays: give the money back.

    E.g. a replaced session's intent that the shopper's browser confirmed anyway. Its money
    belongs to no order, so it must not stay held or taken: the authorization is canceled
    (``requires_capture``, key ``pi:{pi}:cancel:orphan``) or the payment refunded
    (``succeeded``, key ``pi:{pi}:refund:orphan``); the ledger records authorization and
    void/refund (no order id); a ``CheckoutIncident`` (``orphan_payment``), an order event and
    a ``staff_alert`` log line tell staff; the intent's session is retired. Calls Stripe:
    never inside a transaction.

    Returns (the incident, filed by this call). Idempotent and safe to run concurrently
    (several events of one intent at once): a pending
    ledger row keyed like the Stripe call is the claim, taken under the cart's row lock; others
    get ``ReleaseInProgress`` (transient) and later find the incident. A claim left pending
    longer than ``CART_COMPLETING_TIMEOUT`` (process died, Stripe unreachable) is taken over
    after re-reading what Stripe did. A refusal other than a transient error files the incident
    as ``action_failed``: staff must release the payment by hand.
    """
    pi_id = payment_intent["id"]
    status = payment_intent.get("status")
    existing = _orphan_incident(payment_intent_id=pi_id)
    if existing is not None:
        return existing, False
    order = Order.objects.get(pk=order_id)
    if order.payment_intent_id == pi_id or status not in ("requires_capture", "succeeded"):
        raise ValueError(f"{pi_id} ({status}) is not a paid PaymentIntent apart from order {order_id}'s.")
    amount = int(payment_intent["amount"])
    currency = str(payment_intent["currency"]).lower()
    cancel = status == "requires_capture"
    claim = LedgerEntryData(
        payment_intent_id=pi_id,
        kind=LedgerEntryKind.VOID if cancel else LedgerEntryKind.REFUND,
        amount=amount,
        currency_code=currency,
        idempotency_key=ledger.key_release(payment_intent_id=pi_id, op="cancel" if cancel else "refund", tag="orphan"),
        status=LedgerEntryStatus.PENDING,
        actor=Actor.SYSTEM,
        reason="orphan_payment",
    )
    claimed = _orphan_claim(cart_id=order.cart_id, claim=claim)
    if isinstance(claimed, CheckoutIncident):
        return claimed, False

    canceled, refund = _release_state(payment_intent_id=pi_id) if claimed == "taken_over" else (None, None)
    detail = f"Second payment for the cart of order #{order.display_id} (paid by {order.payment_intent_id})."
    if canceled is None and refund is None:
        try:
            if cancel:
                canceled = gateway.payment_intent_cancel(id=pi_id, idempotency_key=claim.idempotency_key)
            else:
                refund = gateway.refund_create(
                    payment_intent=pi_id,
                    metadata={"cart_id": order.cart_id, "reason": "orphan_payment"},
                    idempotency_key=claim.idempotency_key,
                )
        except (ProviderUnavailable, ServiceUnavailable):
            raise  # the claim stays pending: the retry takes it over after re-reading Stripe
        except ApplicationError as exc:
            canceled, refund = _release_state(payment_intent_id=pi_id)  # released by someone else?
            if canceled is None and refund is None:
                detail = f"{detail} Releasing it failed ({exc.code}); staff must cancel or refund {pi_id}."

    settled: str
    if canceled is not None:
        resolution, settled, object_id = CheckoutIncidentResolution.PAYMENT_CANCELED, LedgerEntryStatus.SUCCEEDED, ""
    elif refund is not None:
        resolution, settled, object_id = (
            CheckoutIncidentResolution.PAYMENT_REFUNDED,
            refund_status_of(refund),
            str(refund["id"]),
        )
    else:
        resolution, settled, object_id = CheckoutIncidentResolution.ACTION_FAILED, LedgerEntryStatus.FAILED, ""
    released = resolution != CheckoutIncidentResolution.ACTION_FAILED

    with transaction.atomic():
        cart_services.cart_lock(cart_id=order.cart_id)
        existing = _orphan_incident(payment_intent_id=pi_id)
        if existing is not None:  # a claim we took over finished after all
            return existing, False
        order = order_lock(order_id=order_id)
        ledger.ledger_entries_record(entries=placement_ledger(payment_intent=payment_intent, order_id="", actor=actor))
        ledger.ledger_entry_settle(idempotency_key=claim.idempotency_key, status=settled, stripe_object_id=object_id)
        if released:
            payment_services.payment_session_release(payment_intent_id=pi_id, status=PaymentSessionStatus.CANCELED)
        incident = CheckoutIncident.objects.create(
            kind=CheckoutIncidentKind.ORPHAN_PAYMENT,
            cart_id=order.cart_id,
            payment_intent_id=pi_id,
            amount=amount,
            currency_code=currency,
            resolution=resolution,
            detail=detail[:500],
            actor=actor,
        )
        event_record(
            order=order,
            type="orphan_payment_released" if released else "orphan_payment_release_failed",
            actor=actor,
            user_id=None,
            payload={"payment_intent_id": pi_id, "amount": amount, "currency_code": currency, "resolution": resolution},
        ).save()
    logger.error(
        "staff_alert kind=orphan_payment cart_id=%s order_id=%s order_payment_intent_id=%s payment_intent_id=%s "
        "amount=%s currency=%s resolution=%s actor=%s",
        order.cart_id,
        order.id,
        order.payment_intent_id,
        pi_id,
        amount,
        currency,
        resolution,
        actor,
    )
    return incident, True


def _orphan_claim(*, cart_id: str, claim: LedgerEntryData) -> CheckoutIncident | str:
    """Under the cart's row lock: the incident if one is filed, else ``claimed`` / ``taken_over``."""
    with transaction.atomic():
        cart_services.cart_lock(cart_id=cart_id)
        existing = _orphan_incident(payment_intent_id=claim.payment_intent_id)
        if existing is not None:
            return existing
        row, created = ledger.ledger_entry_record(entry=claim)
        if created:
            return "claimed"
        stale_before = timezone.now() - settings.CART_COMPLETING_TIMEOUT
        if row.status == LedgerEntryStatus.PENDING and row.updated_at <= stale_before:
            ledger.ledger_entry_settle(idempotency_key=claim.idempotency_key, status=LedgerEntryStatus.PENDING)  # touch
            logger.warning("orphan_payment.release_taken_over payment_intent_id=%s", claim.payment_intent_id)
            return "taken_over"
    raise ReleaseInProgress()


def _release_state(*, payment_intent_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """What Stripe shows released already: (the canceled intent, or a refund covering the amount)."""
    intent = gateway.payment_intent_retrieve(id=payment_intent_id)
    if intent.get("status") == "canceled":
        return intent, None
    if intent.get("status") == "succeeded" and gateway.latest_charge_id(intent):
        refunds = [
            r
            for r in gateway.refund_list(payment_intent=payment_intent_id)
            if r.get("status") in ("succeeded", "pending")
        ]
        if refunds and sum(int(r.get("amount") or 0) for r in refunds) >= int(intent.get("amount") or 0):
            return None, refunds[0]
    return None, None


def _orphan_incident(*, payment_intent_id: str) -> CheckoutIncident | None:
    return CheckoutIncident.objects.filter(
        kind=CheckoutIncidentKind.ORPHAN_PAYMENT, payment_intent_id=payment_intent_id
    ).first()
