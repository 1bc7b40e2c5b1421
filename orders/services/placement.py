"""Checkout completion: turning a paid cart into its one order (the orchestrator).

Placement follows saleor's ``complete_checkout`` shape (docs/orders.md has the sequence and
the exactly-once argument):

1. short transaction: lock the cart; completed -> return its order; ``completing`` (and
   fresh) -> 409 ``cart_completing``; else mark it ``completing`` with a token
   (``completing_since``). Commit.
2. outside any transaction: read the PaymentIntent from Stripe and check it belongs to the
   cart and is authorized.
3. one transaction: lock the cart again (cart row, then stock rows by pk, then the order
   counter, then the payment session row), check the amount against the cart *now*, create the order snapshot, consume
   stock, write ledger rows and events, mark the cart completed. All or nothing.

Any failure after step 1 puts the cart back to ``active`` (only if this attempt still owns
it). A paid intent that cannot become the order (out of stock, or the cart total no longer
matches the authorized amount) is released: cancel or refund, CheckoutIncident, session
retired (``orders.services.incidents``). No lock is ever held across a Stripe call; every Stripe write has a deterministic
idempotency key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone

from carts import checkout as cart_checkout
from carts import completion as cart_completion
from carts import selectors as cart_selectors
from carts import services as cart_services
from carts.models import Cart, CartStatus
from catalog import services as catalog_services
from common import metrics
from common.actors import Actor
from common.errors import Conflict, Gone, InsufficientInventory, NotFound, PaymentError, Unprocessable
from orders import selectors
from orders.models import FulfillmentStatus, Order, OrderEvent, OrderLine, OrderStatus, PaymentStatus
from orders.services.core import InvalidTransition, display_id_next, event_record, placement_ledger
from orders.services.incidents import incident_amount_mismatch, incident_oversold
from orders.transitions import transition_allowed
from payments import gateway, ledger
from payments import selectors as payment_selectors
from payments import services as payment_services
from payments.models import LedgerEntryKind

logger = logging.getLogger(__name__)

AUTHORIZED_STATUSES = frozenset({"requires_capture", "succeeded"})
# Stripe holds a card authorization for 7 days unless the charge says otherwise.
AUTHORIZATION_VALIDITY = timedelta(days=7)


class AmountMismatch(Unprocessable):
    """The cart changed after its PaymentIntent was authorized: the payment is released (422)."""

    code = "amount_mismatch"


@dataclass(frozen=True, slots=True)
class _Claim:
    since: datetime | None = None  # this attempt's token when it claimed the cart
    order: Order | None = None  # the cart's order when it was completed already
    expired: Gone | None = None  # a shopper's expired cart: the answer unless it was paid already


def order_complete_cart(*, cart_id: str, payment_intent_id: str, user_id: str | None) -> tuple[Order, bool]:
    """``POST /store/carts/{id}/complete``: the kill switch, the owner check, then ``order_place``."""
    cart_checkout.checkout_assert_enabled()
    return order_place(
        cart_id=cart_id, payment_intent_id=payment_intent_id, actor=Actor.CUSTOMER, user_id=user_id, check_owner=True
    )


def order_place(
    *,
    cart_id: str,
    payment_intent_id: str,
    actor: str,
    user_id: str | None = None,
    check_owner: bool = False,
) -> tuple[Order, bool]:
    """Turn a paid cart into its one order. Returns (order, created now).

    Called by the store API (``actor=customer``, ``check_owner``) and by the Stripe webhook
    handlers (``actor=stripe``). Exactly once per cart, whatever the concurrency.
    """
    claim = _completion_claim(cart_id=cart_id, user_id=user_id, check_owner=check_owner, actor=actor)
    if claim.order is not None:
        if claim.order.payment_intent_id != payment_intent_id:
            # A second PaymentIntent for a completed cart: its money is not this order's. The
            # caller (webhook reconciliation) must release it; the store API just shows the order.
            logger.warning(
                "order.place_other_payment_intent cart_id=%s order_id=%s order_payment_intent_id=%s "
                "payment_intent_id=%s actor=%s",
                cart_id,
                claim.order.id,
                claim.order.payment_intent_id,
                payment_intent_id,
                actor,
            )
        return claim.order, False
    since = claim.since
    assert since is not None
    payment_intent: dict[str, Any] | None = None
    try:
        try:
            payment_intent = _payment_intent_verify(cart_id=cart_id, payment_intent_id=payment_intent_id)
        except (Conflict, PaymentError):
            if claim.expired is not None:
                raise claim.expired from None
            raise
        return _order_create(cart_id=cart_id, since=since, payment_intent=payment_intent, actor=actor, user_id=user_id)
    except InsufficientInventory as exc:
        assert payment_intent is not None
        incident_oversold(cart_id=cart_id, since=since, payment_intent=payment_intent, error=exc, actor=actor)
        raise
    except AmountMismatch as exc:
        # An authorized amount cannot change: this PaymentIntent can never be the cart's order.
        assert payment_intent is not None
        incident_amount_mismatch(cart_id=cart_id, since=since, payment_intent=payment_intent, error=exc, actor=actor)
        raise
    except BaseException:
        cart_completion.cart_completion_abort(cart_id=cart_id, since=since)
        raise


def _completion_claim(*, cart_id: str, user_id: str | None, check_owner: bool, actor: str) -> _Claim:
    now = timezone.now()
    expired: Gone | None = None
    with transaction.atomic():
        cart = cart_services.cart_lock(cart_id=cart_id)
        if check_owner:
            cart_selectors.cart_check_visible(cart=cart, user_id=user_id)
        if cart.status == CartStatus.COMPLETED:
            return _Claim(order=selectors.order_get_for_cart(cart_id=cart.id))
        if cart.status == CartStatus.COMPLETING:
            if cart.completing_since and cart.completing_since > now - settings.CART_COMPLETING_TIMEOUT:
                raise Conflict("This cart is being completed. Retry in a moment.", code="cart_completing")
            logger.warning(
                "cart.completion_taken_over cart_id=%s stuck_since=%s",
                cart.id,
                cart.completing_since.isoformat() if cart.completing_since else "",
            )
        elif cart_selectors.cart_status(cart=cart, now=now) == CartStatus.EXPIRED and actor == Actor.CUSTOMER:
            # A cart that expired after it was paid still becomes its order (the amount is checked
            # as always), for the shopper as for a Stripe event: the money is held already, and a
            # 410 would send the shopper to pay a second time. Unpaid, the shopper gets the 410.
            expired_on = cart.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            expired = Gone(f"This cart expired on {expired_on}.", code="cart_expired")
        cart_completion.cart_completion_begin(cart=cart, now=now)
    return _Claim(since=now, expired=expired)


def _payment_intent_verify(*, cart_id: str, payment_intent_id: str) -> dict[str, Any]:
    """Read the PaymentIntent from Stripe (never trust the client) and check it pays this cart."""
    stale = Conflict(
        "This payment does not belong to the cart's current payment session. Refresh the payment session.",
        code="payment_session_stale",
        param="payment_intent_id",
    )
    session = payment_selectors.payment_session_active_for_cart(cart_id=cart_id)
    if session is None or session.payment_intent_id != payment_intent_id:
        retired = payment_selectors.payment_session_get_by_intent(payment_intent_id=payment_intent_id)
        if retired is not None and retired.cart_id == cart_id and _released(payment_intent_id=payment_intent_id):
            # its session was retired when the money went back (e.g. out of stock at completion)
            raise PaymentError("This payment was released or refunded. Start a new payment.", code="payment_canceled")
        raise stale
    try:
        payment_intent = gateway.payment_intent_retrieve(id=payment_intent_id)
    except NotFound:
        raise stale from None
    if (payment_intent.get("metadata") or {}).get("cart_id") != cart_id:
        raise stale
    status = payment_intent.get("status")
    if status in AUTHORIZED_STATUSES:
        if _released(payment_intent_id=payment_intent_id):
            # e.g. refunded after an earlier attempt ran out of stock: Stripe still says succeeded
            raise PaymentError("This payment was released or refunded. Start a new payment.", code="payment_canceled")
        return payment_intent
    if status == "requires_action":
        raise PaymentError("The payment needs additional authentication.", code="payment_requires_action")
    if status == "canceled":
        raise PaymentError("The payment was canceled. Start a new payment.", code="payment_canceled")
    raise PaymentError("The payment has not been authorized.", code="payment_not_authorized")


def _released(*, payment_intent_id: str) -> bool:
    """The ledger shows this intent's money given back (voided or refunded, or a refund pending)."""
    totals = ledger.ledger_totals(payment_intent_id=payment_intent_id)
    return bool(totals.voided or totals.refunded or totals.refund_pending)


def _charge_of(payment_intent: dict[str, Any]) -> dict[str, Any]:
    charge = payment_intent.get("latest_charge")
    return charge if isinstance(charge, dict) else {}


def _capture_before(payment_intent: dict[str, Any], now: datetime) -> datetime | None:
    if payment_intent.get("status") != "requires_capture":
        return None
    card = (_charge_of(payment_intent).get("payment_method_details") or {}).get("card") or {}
    value = card.get("capture_before")
    if isinstance(value, int) and value > 0:
        return datetime.fromtimestamp(value, tz=UTC)
    return now + AUTHORIZATION_VALIDITY


def _order_create(
    *, cart_id: str, since: datetime, payment_intent: dict[str, Any], actor: str, user_id: str | None
) -> tuple[Order, bool]:
    try:
        with transaction.atomic():
            cart = cart_services.cart_lock(cart_id=cart_id)
            if cart.status == CartStatus.COMPLETED:  # a slower attempt of ours was overtaken
                return selectors.order_get_for_cart(cart_id=cart.id), False
            if cart.status != CartStatus.COMPLETING or cart.completing_since != since:
                raise Conflict("This cart is being completed. Retry in a moment.", code="cart_completing")
            order = _order_create_locked(cart=cart, payment_intent=payment_intent, actor=actor, user_id=user_id)
    except IntegrityError:
        existing = Order.objects.filter(cart_id=cart_id).first()
        if existing is None:
            raise
        return existing, False
    logger.info(
        "order.placed order_id=%s display_id=%s cart_id=%s customer_id=%s payment_intent_id=%s "
        "amount=%s currency=%s payment_status=%s lines=%s actor=%s",
        order.id,
        order.display_id,
        cart_id,
        order.customer_id or "",
        order.payment_intent_id,
        order.total,
        order.currency_code,
        order.payment_status,
        len(order.placed_lines),  # type: ignore[attr-defined]  # set by _order_create_locked
        actor,
    )
    metrics.record_order_created(
        currency=order.currency_code,
        actor=actor,
        captured=order.total if order.payment_status == PaymentStatus.CAPTURED else 0,
    )  # noqa: E501
    return order, True


def _order_create_locked(*, cart: Cart, payment_intent: dict[str, Any], actor: str, user_id: str | None) -> Order:
    """Inside the placement transaction, with the cart row locked and owned by this attempt."""
    now = timezone.now()
    prefetch_related_objects([cart], "items")
    items = list(cart.items.all())
    if not items:
        raise Unprocessable("The cart is empty.", code="cart_empty")
    totals = cart_selectors.cart_totals(cart=cart)
    pi_amount, pi_currency = int(payment_intent["amount"]), str(payment_intent["currency"]).lower()
    if pi_amount != totals.total or pi_currency != cart.currency_code:
        raise AmountMismatch(
            f"The cart total ({totals.total} {cart.currency_code}) differs from the authorized payment "
            f"({pi_amount} {pi_currency}). Refresh the payment session.",
            param="payment_intent_id",
        )
    quantities: dict[str, int] = {}
    for item in items:
        quantities[item.variant_id] = quantities.get(item.variant_id, 0) + item.quantity
    catalog_services.stock_consume(cart_id=cart.id, quantities=quantities, now=now)

    succeeded = payment_intent.get("status") == "succeeded"
    payment_status = PaymentStatus.CAPTURED if succeeded else PaymentStatus.AUTHORIZED
    if not transition_allowed(field="payment_status", current=PaymentStatus.NOT_PAID, target=payment_status):
        raise InvalidTransition(param="payment_status")  # pragma: no cover - the table allows both
    order = Order(
        display_id=display_id_next(),
        cart=cart,
        status=OrderStatus.PENDING,
        payment_status=payment_status,
        fulfillment_status=FulfillmentStatus.NOT_FULFILLED,
        email=cart.email,
        customer_id=cart.customer_id,
        region_id=cart.region_id,
        currency_code=cart.currency_code,
        tax_rate_bps=cart.region.tax_rate_bps,
        tax_inclusive=cart.region.tax_inclusive,
        shipping_address=cart.shipping_address,
        billing_address=cart.billing_address or cart.shipping_address,
        shipping_option_id=cart.shipping_option_id or "",
        shipping_name=cart.shipping_name,
        subtotal=totals.subtotal,
        shipping_total=totals.shipping_total,
        shipping_tax=totals.shipping_tax,
        tax_total=totals.tax_total,
        total=totals.total,
        payment_intent_id=payment_intent["id"],
        capture_method=str(payment_intent.get("capture_method") or ""),
        authorized_at=now,
        capture_before=_capture_before(payment_intent, now),
    )
    order.save(force_insert=True)
    lines = [
        OrderLine(
            order=order,
            variant_id=item.variant_id,
            sku=item.sku,
            title=item.title,
            quantity=item.quantity,
            unit_price=item.unit_price,
            subtotal=totals.lines[item.id].subtotal,
            tax_total=totals.lines[item.id].tax_total,
            total=totals.lines[item.id].total,
            position=position,
        )
        for position, item in enumerate(items)
    ]
    OrderLine.objects.bulk_create(lines)
    order.placed_lines = lines  # type: ignore[attr-defined]  # for the audit line, no re-query

    entries = placement_ledger(payment_intent=payment_intent, order_id=order.id, actor=actor)
    ledger.ledger_entries_record(entries=entries)
    after = {
        "authorized": pi_amount,
        "captured": sum(e.amount for e in entries if e.kind == LedgerEntryKind.CAPTURE),
        "voided": 0,
        "refunded": 0,
    }
    OrderEvent.objects.bulk_create(
        [
            event_record(
                order=order,
                type="order_placed",
                actor=actor,
                user_id=user_id,
                payload={
                    "display_id": order.display_id,
                    "cart_id": cart.id,
                    "payment_intent_id": order.payment_intent_id,
                    "total": order.total,
                    "currency_code": order.currency_code,
                    "lines": len(lines),
                },
            ),
            event_record(
                order=order,
                type="payment_status_changed",
                actor=Actor.STRIPE,
                user_id=None,
                payload={
                    "field": "payment_status",
                    "from": PaymentStatus.NOT_PAID,
                    "to": payment_status,
                    "amounts_before": {"authorized": 0, "captured": 0, "voided": 0, "refunded": 0},
                    "amounts_after": after,
                },
            ),
        ]
    )
    cart_completion.cart_completion_finish(cart=cart, now=now)
    payment_services.payment_session_sync_from_intent(payment_intent=payment_intent)
    order_id = order.id
    transaction.on_commit(lambda: _confirmation_enqueue(order_id=order_id), robust=True)
    return order


def _confirmation_enqueue(*, order_id: str) -> None:
    """After commit: queue the confirmation email. The order is placed whatever happens here:
    a broker outage is logged, never raised (the answer stays 201), and the
    ``orders.resend_confirmations`` beat task sends it later (``order_confirmations_resend``)."""
    from orders import tasks  # tasks import services: keep the import one-way at module load

    try:
        tasks.send_order_confirmation.delay(order_id)
    except Exception as exc:  # noqa: BLE001 - kombu raises OperationalError and friends
        logger.error("order.confirmation_enqueue_failed order_id=%s error=%s", order_id, type(exc).__name__)
