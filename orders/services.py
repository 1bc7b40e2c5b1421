"""Order writes: checkout completion (the orchestrator), status transitions, payment operations.

Placement follows saleor's ``complete_checkout`` shape (docs/orders.md has the sequence and
the exactly-once argument):

1. short transaction: lock the cart; completed -> return its order; ``completing`` (and
   fresh) -> 409 ``cart_completing``; else mark it ``completing`` with a token
   (``completing_since``). Commit.
2. outside any transaction: read the PaymentIntent from Stripe and check it belongs to the
   cart and is authorized.
3. one transaction: lock the cart again (cart row, then stock rows by pk, then the order
   counter), check the amount against the cart *now*, create the order snapshot, consume
   stock, write ledger rows and events, mark the cart completed. All or nothing.

Any failure after step 1 puts the cart back to ``active`` (only if this attempt still owns
it). No lock is ever held across a Stripe call; every Stripe write has a deterministic
idempotency key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, prefetch_related_objects
from django.utils import timezone

from carts import checkout as cart_checkout
from carts import completion as cart_completion
from carts import selectors as cart_selectors
from carts import services as cart_services
from carts.models import Cart, CartStatus
from catalog import services as catalog_services
from common import metrics
from common.errors import (
    ApplicationError,
    Conflict,
    Gone,
    InsufficientInventory,
    NotFound,
    PaymentError,
    Unprocessable,
    ValidationError,
)
from orders import selectors
from orders.models import (
    CheckoutIncident,
    CheckoutIncidentKind,
    CheckoutIncidentResolution,
    FulfillmentStatus,
    Order,
    OrderCounter,
    OrderEvent,
    OrderLine,
    OrderStatus,
    PaymentStatus,
)
from orders.transitions import payment_status_for, transition_allowed, transition_path
from payments import gateway, ledger
from payments import selectors as payment_selectors
from payments import services as payment_services
from payments.ledger import LedgerEntryData
from payments.models import Actor, LedgerEntryKind, LedgerEntryStatus

logger = logging.getLogger(__name__)

AUTHORIZED_STATUSES = frozenset({"requires_capture", "succeeded"})
# Stripe holds a card authorization for 7 days unless the charge says otherwise.
AUTHORIZATION_VALIDITY = timedelta(days=7)
ORDER_COUNTER = "order"


class InvalidTransition(Conflict):
    code = "invalid_transition"
    default_message = "This change is not allowed in the order's current state."


# --- Locks and small helpers ---------------------------------------------------------------


def order_lock(*, order_id: str) -> Order:
    """SELECT ... FOR UPDATE one order row (lock order: cart, stock rows, order, counter)."""
    order = Order.objects.select_for_update(of=("self",)).filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    return order


def _display_id_next() -> int:
    """The next order number: an UPDATE ... RETURNING on the counter row (locked until commit).

    Gapless and sequential on PostgreSQL and SQLite alike. The counter row is taken last in the
    placement transaction, so the time it is held is a handful of inserts.
    """
    table = connection.ops.quote_name(OrderCounter._meta.db_table)
    sql = f"UPDATE {table} SET value = value + 1 WHERE name = %s RETURNING value"  # noqa: S608 - constant table name
    with connection.cursor() as cursor:
        cursor.execute(sql, [ORDER_COUNTER])
        row = cursor.fetchone()
        if row is None:  # first order ever (or a test database flushed): seed from existing orders
            start = Order.objects.aggregate(top=Max("display_id"))["top"] or 0
            OrderCounter.objects.bulk_create([OrderCounter(name=ORDER_COUNTER, value=start)], ignore_conflicts=True)
            cursor.execute(sql, [ORDER_COUNTER])
            row = cursor.fetchone()
    return int(row[0])


def _event(
    *, order: Order, type: str, actor: str, user_id: str | None, payload: Mapping[str, Any] | None = None
) -> OrderEvent:
    return OrderEvent(order=order, type=type, actor=actor, actor_user_id=user_id or "", payload=dict(payload or {}))


def _amounts(totals: ledger.LedgerTotals) -> dict[str, int]:
    return {
        "authorized": totals.authorized,
        "captured": totals.captured,
        "voided": totals.voided,
        "refunded": totals.refunded,
    }


def _transition(
    *,
    order: Order,
    field: str,
    target: str,
    actor: str,
    user_id: str | None,
    payload: Mapping[str, Any] | None = None,
) -> OrderEvent | None:
    """Move one status field of a *locked* order, or raise ``InvalidTransition``. Writes the event."""
    current = getattr(order, field)
    if current == target:
        return None
    if not transition_allowed(field=field, current=current, target=target):
        raise InvalidTransition(f"Cannot change {field} from {current} to {target}.", param=field)
    setattr(order, field, target)
    order.save(update_fields=[field, "updated_at"])
    event = _event(
        order=order,
        type=f"{field}_changed",
        actor=actor,
        user_id=user_id,
        payload={"field": field, "from": current, "to": target, **(payload or {})},
    )
    event.save()
    logger.info(
        "order.transition order_id=%s field=%s from=%s to=%s actor=%s user_id=%s",
        order.id,
        field,
        current,
        target,
        actor,
        user_id or "",
    )
    return event


def order_transition(
    *,
    order_id: str,
    field: str,
    target: str,
    actor: str,
    user_id: str | None = None,
    reason: str = "",
) -> Order:
    """Change ``status`` or ``fulfillment_status`` under the order's row lock (one event).

    ``payment_status`` is not set by hand: it follows the ledger (``order_payment_sync`` and
    the payment operations below).
    """
    if field not in ("status", "fulfillment_status"):
        raise ValidationError("Only status and fulfillment_status can be changed directly.", param="field")
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        _transition(order=order, field=field, target=target, actor=actor, user_id=user_id, payload={"reason": reason})
    return order


# --- Placement -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claim:
    since: datetime | None = None  # this attempt's token when it claimed the cart
    order: Order | None = None  # the cart's order when it was completed already


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
        payment_intent = _payment_intent_verify(cart_id=cart_id, payment_intent_id=payment_intent_id)
        return _order_create(cart_id=cart_id, since=since, payment_intent=payment_intent, actor=actor, user_id=user_id)
    except InsufficientInventory as exc:
        assert payment_intent is not None
        _oversold(cart_id=cart_id, since=since, payment_intent=payment_intent, error=exc, actor=actor)
        raise
    except BaseException:
        cart_completion.cart_completion_abort(cart_id=cart_id, since=since)
        raise


def _completion_claim(*, cart_id: str, user_id: str | None, check_owner: bool, actor: str) -> _Claim:
    now = timezone.now()
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
            # A shopper gets 410; a Stripe event for a cart that expired after it was paid still
            # places the order (the amount is checked as always): the money is held already.
            expired_on = cart.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            raise Gone(f"This cart expired on {expired_on}.", code="cart_expired")
        cart_completion.cart_completion_begin(cart=cart, now=now)
    return _Claim(since=now)


def _payment_intent_verify(*, cart_id: str, payment_intent_id: str) -> dict[str, Any]:
    """Read the PaymentIntent from Stripe (never trust the client) and check it pays this cart."""
    stale = Conflict(
        "This payment does not belong to the cart's current payment session. Refresh the payment session.",
        code="payment_session_stale",
        param="payment_intent_id",
    )
    session = payment_selectors.payment_session_active_for_cart(cart_id=cart_id)
    if session is None or session.payment_intent_id != payment_intent_id:
        raise stale
    try:
        payment_intent = gateway.payment_intent_retrieve(id=payment_intent_id)
    except NotFound:
        raise stale from None
    if (payment_intent.get("metadata") or {}).get("cart_id") != cart_id:
        raise stale
    status = payment_intent.get("status")
    if status in AUTHORIZED_STATUSES:
        released = ledger.ledger_totals(payment_intent_id=payment_intent_id)
        if released.voided or released.refunded or released.refund_pending:
            # e.g. refunded after an earlier attempt ran out of stock: Stripe still says succeeded
            raise PaymentError("This payment was released or refunded. Start a new payment.", code="payment_canceled")
        return payment_intent
    if status == "requires_action":
        raise PaymentError("The payment needs additional authentication.", code="payment_requires_action")
    if status == "canceled":
        raise PaymentError("The payment was canceled. Start a new payment.", code="payment_canceled")
    raise PaymentError("The payment has not been authorized.", code="payment_not_authorized")


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


def _placement_ledger(*, payment_intent: dict[str, Any], order_id: str, actor: str) -> list[LedgerEntryData]:
    pi_id = payment_intent["id"]
    amount = int(payment_intent["amount"])
    currency = str(payment_intent["currency"]).lower()
    charge_id = gateway.latest_charge_id(payment_intent) or ""
    entries = [
        LedgerEntryData(
            payment_intent_id=pi_id,
            order_id=order_id,
            kind=LedgerEntryKind.AUTHORIZATION,
            amount=amount,
            currency_code=currency,
            idempotency_key=f"pi:{pi_id}:authorization",
            stripe_object_id=charge_id,
            actor=Actor.STRIPE,
        )
    ]
    if payment_intent.get("status") == "succeeded":
        received = payment_intent.get("amount_received")
        entries.append(
            LedgerEntryData(
                payment_intent_id=pi_id,
                order_id=order_id,
                kind=LedgerEntryKind.CAPTURE,
                amount=int(received) if isinstance(received, int) and received > 0 else amount,
                currency_code=currency,
                idempotency_key=f"charge:{charge_id}:capture" if charge_id else f"pi:{pi_id}:capture",
                stripe_object_id=charge_id,
                actor=Actor.STRIPE,
            )
        )
    return entries


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
        len(order.placed_lines),
        actor,
    )
    metrics.record_order_created(currency=order.currency_code, actor=actor, captured=order.total if order.payment_status == PaymentStatus.CAPTURED else 0)  # noqa: E501
    return order, True


def _order_create_locked(
    *, cart: Cart, payment_intent: dict[str, Any], actor: str, user_id: str | None
) -> Order:
    """Inside the placement transaction, with the cart row locked and owned by this attempt."""
    now = timezone.now()
    prefetch_related_objects([cart], "items")
    items = list(cart.items.all())
    if not items:
        raise Unprocessable("The cart is empty.", code="cart_empty")
    totals = cart_selectors.cart_totals(cart=cart)
    pi_amount, pi_currency = int(payment_intent["amount"]), str(payment_intent["currency"]).lower()
    if pi_amount != totals.total or pi_currency != cart.currency_code:
        raise Unprocessable(
            f"The cart total ({totals.total} {cart.currency_code}) differs from the authorized payment "
            f"({pi_amount} {pi_currency}). Refresh the payment session.",
            code="amount_mismatch",
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
        display_id=_display_id_next(),
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
    order.placed_lines = lines  # type: ignore[attr-defined] - for the audit line, no re-query

    entries = _placement_ledger(payment_intent=payment_intent, order_id=order.id, actor=actor)
    ledger.ledger_entries_record(entries=entries)
    after = {
        "authorized": pi_amount,
        "captured": sum(e.amount for e in entries if e.kind == LedgerEntryKind.CAPTURE),
        "voided": 0,
        "refunded": 0,
    }
    OrderEvent.objects.bulk_create(
        [
            _event(
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
            _event(
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
    transaction.on_commit(lambda: _confirmation_enqueue(order_id=order_id))
    return order


def _confirmation_enqueue(*, order_id: str) -> None:
    from orders import tasks  # tasks import services: keep the import one-way at module load

    tasks.send_order_confirmation.delay(order_id)


def _oversold(
    *, cart_id: str, since: datetime, payment_intent: dict[str, Any], error: InsufficientInventory, actor: str
) -> None:
    """Paid but not fulfillable: release the money, tell staff, give the cart back. Outside any transaction."""
    pi_id = payment_intent["id"]
    amount = int(payment_intent["amount"])
    currency = str(payment_intent["currency"]).lower()
    entries: list[LedgerEntryData] = []
    released_intent: dict[str, Any] | None = None
    detail = error.message
    try:
        if payment_intent.get("status") == "requires_capture":
            result = gateway.payment_intent_cancel(id=pi_id, idempotency_key=f"pi:{pi_id}:cancel:oos")
            released_intent = result
            resolution = CheckoutIncidentResolution.PAYMENT_CANCELED
            entries.append(
                LedgerEntryData(
                    payment_intent_id=pi_id,
                    kind=LedgerEntryKind.VOID,
                    amount=amount,
                    currency_code=currency,
                    idempotency_key=f"pi:{pi_id}:void",
                    actor=Actor.SYSTEM,
                    reason="insufficient_inventory",
                )
            )
        else:
            result = gateway.refund_create(
                payment_intent=pi_id,
                metadata={"cart_id": cart_id, "reason": "insufficient_inventory"},
                idempotency_key=f"pi:{pi_id}:refund:oos",
            )
            resolution = CheckoutIncidentResolution.PAYMENT_REFUNDED
            entries.append(
                LedgerEntryData(
                    payment_intent_id=pi_id,
                    kind=LedgerEntryKind.REFUND,
                    amount=int(result.get("amount") or amount),
                    currency_code=currency,
                    idempotency_key=f"refund:{result['id']}",
                    stripe_object_id=str(result["id"]),
                    status=_refund_status(result),
                    actor=Actor.SYSTEM,
                    reason="insufficient_inventory",
                )
            )
    except ApplicationError as exc:
        resolution = CheckoutIncidentResolution.ACTION_FAILED
        detail = f"{detail} Releasing the payment failed ({exc.code}); staff must cancel or refund {pi_id}."
    with transaction.atomic():
        if entries:
            ledger.ledger_entries_record(
                entries=[*_placement_ledger(payment_intent=payment_intent, order_id="", actor=actor), *entries]
            )
        CheckoutIncident.objects.create(
            kind=CheckoutIncidentKind.INSUFFICIENT_INVENTORY,
            cart_id=cart_id,
            payment_intent_id=pi_id,
            variant_id=error.param or "",
            amount=amount,
            currency_code=currency,
            resolution=resolution,
            detail=detail[:500],
            actor=actor,
        )
    if released_intent is not None:  # the canceled intent: the session follows it (and can be replaced)
        payment_services.payment_session_sync_from_intent(payment_intent=released_intent)
    cart_completion.cart_completion_abort(cart_id=cart_id, since=since)
    catalog_services.stock_release(cart_id=cart_id)
    logger.warning(
        "checkout.incident kind=insufficient_inventory cart_id=%s payment_intent_id=%s variant_id=%s "
        "amount=%s currency=%s resolution=%s actor=%s",
        cart_id,
        pi_id,
        error.param or "",
        amount,
        currency,
        resolution,
        actor,
    )
    outcome = {
        CheckoutIncidentResolution.PAYMENT_CANCELED: " Your payment authorization was released.",
        CheckoutIncidentResolution.PAYMENT_REFUNDED: " Your payment was refunded.",
    }.get(resolution, "")
    error.message = f"{error.message} No order was placed.{outcome}"


def _refund_status(refund: dict[str, Any]) -> str:
    status = refund.get("status")
    if status == "succeeded":
        return LedgerEntryStatus.SUCCEEDED
    if status in ("failed",):
        return LedgerEntryStatus.FAILED
    if status == "canceled":
        return LedgerEntryStatus.CANCELED
    return LedgerEntryStatus.PENDING


# --- Confirmation email ----------------------------------------------------------------------


def order_confirmation_send(*, order_id: str) -> bool:
    """Send the confirmation email once. Returns whether this call sent it.

    The ``confirmation_sent_at`` claim is an atomic conditional UPDATE, so two workers (a task
    retried, delivered twice) cannot both send. If sending raises, the claim is undone so the
    task's retry can send.
    """
    from orders import emails

    now = timezone.now()
    claimed = Order.objects.filter(pk=order_id, confirmation_sent_at__isnull=True).update(confirmation_sent_at=now)
    if not claimed:
        return False
    order = selectors.order_get(order_id=order_id)
    try:
        emails.order_confirmation_email(order=order).send()
    except Exception:
        Order.objects.filter(pk=order_id, confirmation_sent_at=now).update(confirmation_sent_at=None)
        raise
    OrderEvent.objects.create(order=order, type="confirmation_sent", actor=Actor.SYSTEM, payload={"to": "customer"})
    logger.info("order.confirmation_sent order_id=%s display_id=%s", order.id, order.display_id)
    return True


# --- Payment operations (staff admin, issue 6) and reconciliation (webhooks) ----------------
#
# Shape of every operation: (1) short transaction under the order lock: validate against the
# ledger, insert a *pending* ledger row whose unique key is the operation's idempotency key;
# (2) Stripe call outside any transaction with that same key; (3) short transaction: settle
# the row, record what follows from it, move payment_status, write the event.
#
# Keys: ``order:{id}:{op}:v{n}`` where ``n`` is the ledger version (number of ledger rows of
# the PaymentIntent) the staff member saw (``expected_version``, a hidden field of the admin
# form). A double-submitted form carries the same ``n``: it finds the row of the first submit
# and returns (or answers 409 while the first is in flight) instead of moving money twice.


def _ledger_op_begin(
    *,
    order_id: str,
    kind: str,
    op: str,
    amount_for: Any,
    expected_version: int | None,
    actor: str,
    user_id: str | None,
    reason: str,
) -> tuple[Order, ledger.LedgerTotals, LedgerEntryData | None, Any]:
    """Step 1. Returns (order, totals before, the pending row to run or None if already done, existing row)."""
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        totals = ledger.ledger_totals(payment_intent_id=order.payment_intent_id)
        version = totals.entries if expected_version is None else expected_version
        key = f"order:{order.id}:{op}:v{version}"
        existing = ledger.ledger_entry_get(idempotency_key=key)
        if existing is not None:
            if existing.status == LedgerEntryStatus.PENDING:
                raise Conflict("This operation is already in progress.", code="payment_operation_in_progress")
            return order, totals, None, existing  # a repeated submit of a finished operation
        if expected_version is not None and expected_version != totals.entries:
            raise Conflict(
                "The order's payment changed since this form was shown. Reload and try again.", code="order_changed"
            )
        amount = amount_for(order, totals)
        entry = LedgerEntryData(
            payment_intent_id=order.payment_intent_id,
            order_id=order.id,
            kind=kind,
            amount=amount,
            currency_code=order.currency_code,
            idempotency_key=key,
            status=LedgerEntryStatus.PENDING,
            actor=actor,
            actor_user_id=user_id or "",
            reason=reason,
        )
        ledger.ledger_entries_record(entries=[entry])
    return order, totals, entry, None


def _ledger_op_failed(*, entry: LedgerEntryData, error: ApplicationError, op: str) -> None:
    ledger.ledger_entry_settle(idempotency_key=entry.idempotency_key, status=LedgerEntryStatus.FAILED)
    logger.warning(
        "order.payment_%s_failed order_id=%s payment_intent_id=%s amount=%s currency=%s error=%s",
        op,
        entry.order_id,
        entry.payment_intent_id,
        entry.amount,
        entry.currency_code,
        error.code,
    )


def _payment_status_follow(
    *, order: Order, before: ledger.LedgerTotals, actor: str, user_id: str | None, event_type: str, extra: dict[str, Any]
) -> ledger.LedgerTotals:
    """Inside a transaction with the order locked: move payment_status to what the ledger says; one event."""
    after = ledger.ledger_totals(payment_intent_id=order.payment_intent_id)
    target = payment_status_for(
        authorized=after.authorized, captured=after.captured, voided=after.voided, refunded=after.refunded
    )
    payload = {"amounts_before": _amounts(before), "amounts_after": _amounts(after), **extra}
    path = transition_path(field="payment_status", current=order.payment_status, target=target)
    if path is None:
        raise InvalidTransition(f"Cannot change payment_status from {order.payment_status} to {target}.")
    for step in path:
        _transition(order=order, field="payment_status", target=step, actor=actor, user_id=user_id, payload=payload)
    if not path and _amounts(before) != _amounts(after):  # money moved, same status (a 2nd partial refund)
        _event(order=order, type=event_type, actor=actor, user_id=user_id, payload=payload).save()
    metrics.record_money_moved(currency=order.currency_code, captured=after.captured - before.captured, refunded=after.refunded - before.refunded)  # noqa: E501
    return after


def _amount_in_range(*, amount: int | None, maximum: int, what: str) -> int:
    if maximum <= 0:
        raise Unprocessable(f"There is nothing left to {what}.", code=f"nothing_to_{what}")
    value = maximum if amount is None else amount
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise Unprocessable(
            f"The amount to {what} must be between 1 and {maximum} (minor units).",
            code=f"{what}_amount_invalid",
            param="amount",
        )
    return value


def order_payment_capture(
    *,
    order_id: str,
    amount: int | None = None,
    actor: str = Actor.STAFF,
    user_id: str | None = None,
    reason: str = "",
    expected_version: int | None = None,
) -> Order:
    """Capture ``amount`` (default: all) of the authorization; the uncaptured rest is released."""

    def amount_for(order: Order, totals: ledger.LedgerTotals) -> int:
        if order.payment_status != PaymentStatus.AUTHORIZED:
            raise InvalidTransition(f"Cannot capture a payment that is {order.payment_status}.", param="payment_status")
        if order.capture_before and timezone.now() >= order.capture_before:
            raise Unprocessable(
                "The authorization has expired; it can no longer be captured.", code="authorization_expired"
            )
        return _amount_in_range(amount=amount, maximum=totals.capturable, what="capture")

    order, before, entry, existing = _ledger_op_begin(
        order_id=order_id,
        kind=LedgerEntryKind.CAPTURE,
        op="capture",
        amount_for=amount_for,
        expected_version=expected_version,
        actor=actor,
        user_id=user_id,
        reason=reason,
    )
    if entry is None:
        return order
    try:
        intent = gateway.payment_intent_capture(
            id=order.payment_intent_id, amount_to_capture=entry.amount, idempotency_key=entry.idempotency_key
        )
    except ApplicationError as exc:
        _ledger_op_failed(entry=entry, error=exc, op="capture")
        raise
    charge_id = gateway.latest_charge_id(intent) or ""
    rest = before.capturable - entry.amount
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        ledger.ledger_entry_settle(
            idempotency_key=entry.idempotency_key, status=LedgerEntryStatus.SUCCEEDED, stripe_object_id=charge_id
        )
        if rest > 0:
            ledger.ledger_entries_record(entries=[_void_entry(order=order, amount=rest, actor=actor, user_id=user_id)])
        after = _payment_status_follow(
            order=order,
            before=before,
            actor=actor,
            user_id=user_id,
            event_type="payment_captured",
            extra={"reason": reason, "charge_id": charge_id},
        )
    logger.info(
        "order.payment_captured order_id=%s payment_intent_id=%s charge_id=%s amount=%s released=%s currency=%s "
        "captured_total=%s actor=%s user_id=%s",
        order.id,
        order.payment_intent_id,
        charge_id,
        entry.amount,
        rest,
        order.currency_code,
        after.captured,
        actor,
        user_id or "",
    )
    return order


def _void_entry(*, order: Order, amount: int, actor: str, user_id: str | None, stripe_object_id: str = "") -> LedgerEntryData:
    return LedgerEntryData(
        payment_intent_id=order.payment_intent_id,
        order_id=order.id,
        kind=LedgerEntryKind.VOID,
        amount=amount,
        currency_code=order.currency_code,
        idempotency_key=f"pi:{order.payment_intent_id}:void",
        stripe_object_id=stripe_object_id,
        actor=actor,
        actor_user_id=user_id or "",
    )


def order_payment_cancel(
    *,
    order_id: str,
    actor: str = Actor.STAFF,
    user_id: str | None = None,
    reason: str = "",
    expected_version: int | None = None,
) -> Order:
    """Release the whole authorization (nothing captured yet) and cancel the order."""

    def amount_for(order: Order, totals: ledger.LedgerTotals) -> int:
        if order.payment_status != PaymentStatus.AUTHORIZED:
            raise InvalidTransition(f"Cannot cancel a payment that is {order.payment_status}.", param="payment_status")
        return totals.capturable

    order, before, entry, existing = _ledger_op_begin(
        order_id=order_id,
        kind=LedgerEntryKind.VOID,
        op="cancel",
        amount_for=amount_for,
        expected_version=expected_version,
        actor=actor,
        user_id=user_id,
        reason=reason,
    )
    if entry is None:
        return order
    try:
        gateway.payment_intent_cancel(id=order.payment_intent_id, idempotency_key=entry.idempotency_key)
    except ApplicationError as exc:
        _ledger_op_failed(entry=entry, error=exc, op="cancel")
        raise
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        ledger.ledger_entry_settle(idempotency_key=entry.idempotency_key, status=LedgerEntryStatus.SUCCEEDED)
        _payment_status_follow(
            order=order, before=before, actor=actor, user_id=user_id, event_type="payment_canceled", extra={"reason": reason}
        )
        for field, target in (("status", OrderStatus.CANCELED), ("fulfillment_status", FulfillmentStatus.CANCELED)):
            if transition_allowed(field=field, current=getattr(order, field), target=target):
                _transition(order=order, field=field, target=target, actor=actor, user_id=user_id, payload={"reason": reason})
    logger.info(
        "order.payment_canceled order_id=%s payment_intent_id=%s released=%s currency=%s actor=%s user_id=%s",
        order.id,
        order.payment_intent_id,
        entry.amount,
        order.currency_code,
        actor,
        user_id or "",
    )
    return order


def order_payment_refund(
    *,
    order_id: str,
    amount: int | None,
    reason: str = "",
    actor: str = Actor.STAFF,
    user_id: str | None = None,
    expected_version: int | None = None,
) -> Order:
    """Refund ``amount`` (default: everything refundable) of what was captured."""

    def amount_for(order: Order, totals: ledger.LedgerTotals) -> int:
        return _amount_in_range(amount=amount, maximum=totals.refundable, what="refund")

    order, before, entry, existing = _ledger_op_begin(
        order_id=order_id,
        kind=LedgerEntryKind.REFUND,
        op="refund",
        amount_for=amount_for,
        expected_version=expected_version,
        actor=actor,
        user_id=user_id,
        reason=reason,
    )
    if entry is None:
        return order
    try:
        refund = gateway.refund_create(
            payment_intent=order.payment_intent_id,
            amount=entry.amount,
            metadata={"order_id": order.id, "ledger_key": entry.idempotency_key},
            idempotency_key=entry.idempotency_key,
        )
    except ApplicationError as exc:
        _ledger_op_failed(entry=entry, error=exc, op="refund")
        raise
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        ledger.ledger_entry_settle(
            idempotency_key=entry.idempotency_key, status=_refund_status(refund), stripe_object_id=str(refund["id"])
        )
        after = _payment_status_follow(
            order=order,
            before=before,
            actor=actor,
            user_id=user_id,
            event_type="payment_refunded",
            extra={"reason": reason, "refund_id": refund["id"]},
        )
    logger.info(
        "order.payment_refunded order_id=%s payment_intent_id=%s refund_id=%s amount=%s currency=%s "
        "refund_status=%s refunded_total=%s actor=%s user_id=%s",
        order.id,
        order.payment_intent_id,
        refund["id"],
        entry.amount,
        order.currency_code,
        refund.get("status"),
        after.refunded,
        actor,
        user_id or "",
    )
    return order


@dataclass(frozen=True, slots=True)
class _StripeFacts:
    """What Stripe says about the money of one PaymentIntent, in ledger terms."""

    charge_id: str
    authorized: int  # the charge's amount, once the card was authorized
    is_captured: bool
    captured: int | None  # None: captured, amount not reported (localstripe has no amount_captured)
    canceled: bool
    refunds: list[dict[str, Any]]


def _stripe_facts(*, intent: dict[str, Any], refunds: list[dict[str, Any]]) -> _StripeFacts:
    charge = intent.get("latest_charge")
    if isinstance(charge, str):
        charge = gateway.charge_retrieve(id=charge)
    charge = charge or {}
    authorized = int(charge.get("amount") or intent.get("amount") or 0) if charge.get("status") == "succeeded" else 0
    is_captured = bool(charge.get("captured")) and authorized > 0
    amount_captured = charge.get("amount_captured")
    return _StripeFacts(
        charge_id=str(charge.get("id") or ""),
        authorized=authorized,
        is_captured=is_captured,
        captured=(int(amount_captured) if isinstance(amount_captured, int) else None) if is_captured else 0,
        canceled=intent.get("status") == "canceled",
        refunds=refunds,
    )


def order_payment_sync(*, payment_intent_id: str, actor: str = Actor.STRIPE) -> Order | None:
    """Re-read the PaymentIntent (charge, refunds) from Stripe and bring ledger and payment_status in line.

    Idempotent and order-independent (webhooks may arrive late, twice, or out of order): every
    fact is keyed by the Stripe object it comes from. Returns None if no order has this
    PaymentIntent (placement records its own rows). Calls Stripe: never inside a transaction.
    """
    order = selectors.order_get_by_payment_intent(payment_intent_id=payment_intent_id)
    if order is None:
        return None
    intent = gateway.payment_intent_retrieve(id=payment_intent_id)
    refunds = gateway.refund_list(payment_intent=payment_intent_id) if gateway.latest_charge_id(intent) else []
    facts = _stripe_facts(intent=intent, refunds=refunds)
    with transaction.atomic():
        order = order_lock(order_id=order.id)
        before = ledger.ledger_totals(payment_intent_id=payment_intent_id)
        entries = _sync_entries(order=order, facts=facts, before=before)
        ledger.ledger_entries_record(entries=entries)
        for refund in refunds:
            ledger.ledger_refund_status_set(stripe_refund_id=refund["id"], status=_refund_status(refund))
        after = _payment_status_follow(
            order=order, before=before, actor=actor, user_id=None, event_type="payment_synced", extra={}
        )
    if _amounts(before) != _amounts(after):
        logger.info(
            "order.payment_synced order_id=%s payment_intent_id=%s authorized=%s captured=%s voided=%s refunded=%s "
            "currency=%s payment_status=%s actor=%s",
            order.id,
            payment_intent_id,
            after.authorized,
            after.captured,
            after.voided,
            after.refunded,
            order.currency_code,
            order.payment_status,
            actor,
        )
    return order


def _sync_entries(*, order: Order, facts: _StripeFacts, before: ledger.LedgerTotals) -> list[LedgerEntryData]:
    """The ledger rows Stripe's facts imply that are not recorded yet (settles our in-flight rows)."""
    pi_id, charge_id = order.payment_intent_id, facts.charge_id
    recorded = ledger.ledger_recorded_object_ids(payment_intent_id=pi_id)
    pending = {
        e.kind: e for e in ledger.ledger_entries(payment_intent_id=pi_id).filter(status=LedgerEntryStatus.PENDING)
    }
    common: dict[str, Any] = {
        "payment_intent_id": pi_id,
        "order_id": order.id,
        "currency_code": order.currency_code,
        "actor": Actor.STRIPE,
    }
    entries: list[LedgerEntryData] = []
    authorized = max(before.authorized, facts.authorized)
    if facts.authorized and not before.authorized:
        entries.append(
            LedgerEntryData(
                kind=LedgerEntryKind.AUTHORIZATION,
                amount=facts.authorized,
                idempotency_key=f"pi:{pi_id}:authorization",
                stripe_object_id=charge_id,
                **common,
            )
        )

    captured = before.captured
    if facts.is_captured and charge_id not in recorded.get(LedgerEntryKind.CAPTURE, set()):
        in_flight = pending.get(LedgerEntryKind.CAPTURE)
        if in_flight is not None:  # our capture reached Stripe; the process died before settling it
            ledger.ledger_entry_settle(
                idempotency_key=in_flight.idempotency_key, status=LedgerEntryStatus.SUCCEEDED, stripe_object_id=charge_id
            )
            captured = in_flight.amount
        else:  # captured outside this system (e.g. the Stripe dashboard)
            captured = facts.captured if facts.captured is not None else authorized
            entries.append(
                LedgerEntryData(
                    kind=LedgerEntryKind.CAPTURE,
                    amount=captured,
                    idempotency_key=f"charge:{charge_id}:capture",
                    stripe_object_id=charge_id,
                    **common,
                )
            )

    # The part of the authorization that will never be captured: the rest of a partial
    # capture, or everything when the intent was canceled before any capture.
    rest = (authorized - captured) if facts.is_captured else (authorized if facts.canceled else 0)
    release_refund_id = ""
    if rest > 0:
        # Stripe (and localstripe) may show that released rest as a refund without our
        # metadata: that refund is the void, not money returned to the customer.
        for refund in facts.refunds:
            if not (refund.get("metadata") or {}).get("order_id") and int(refund.get("amount") or 0) == rest:
                release_refund_id = refund["id"]
                break
        if not before.voided:
            entries.append(
                LedgerEntryData(
                    kind=LedgerEntryKind.VOID,
                    amount=rest,
                    idempotency_key=f"pi:{pi_id}:void",
                    stripe_object_id=release_refund_id,
                    **common,
                )
            )

    for refund in facts.refunds:
        refund_id = refund["id"]
        if refund_id == release_refund_id or refund_id in recorded.get(LedgerEntryKind.REFUND, set()):
            continue
        if refund_id in recorded.get(LedgerEntryKind.VOID, set()):
            continue
        ours = (refund.get("metadata") or {}).get("ledger_key")
        in_flight = pending.get(LedgerEntryKind.REFUND)
        if ours and in_flight is not None and in_flight.idempotency_key == ours:
            ledger.ledger_entry_settle(idempotency_key=ours, status=_refund_status(refund), stripe_object_id=refund_id)
            continue
        entries.append(
            LedgerEntryData(
                kind=LedgerEntryKind.REFUND,
                amount=int(refund.get("amount") or 0),
                idempotency_key=f"refund:{refund_id}",
                stripe_object_id=refund_id,
                status=_refund_status(refund),
                **common,
            )
        )
    return entries



# --- Disputes (webhooks, issue 5) ---------------------------------------------------------------


def order_dispute_record(
    *, order_id: str, dispute_id: str, created: bool, changed: list[str], actor: str = Actor.STRIPE
) -> Order:
    """A dispute on the order's payment was opened or changed (payments.disputes): one order event.

    Fulfillment stays on hold while ``payments.disputes.dispute_open_for_payment_intent`` is true.
    """
    from payments import disputes

    dispute = disputes.dispute_get(stripe_dispute_id=dispute_id)
    if created:
        event_type = "dispute_opened"
    elif "is_open" in changed and not dispute.is_open:
        event_type = "dispute_closed"
    else:
        event_type = "dispute_updated"
    payload = {
        "dispute_id": dispute.stripe_dispute_id,
        "status": dispute.status,
        "is_open": dispute.is_open,
        "amount": dispute.amount,
        "currency_code": dispute.currency_code,
        "reason": dispute.reason,
        "evidence_due_by": dispute.evidence_due_by.isoformat() if dispute.evidence_due_by else None,
        "funds_withdrawn": dispute.funds_withdrawn,
        "funds_reinstated": dispute.funds_reinstated,
        "changed": list(changed),
    }
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        _event(order=order, type=event_type, actor=actor, user_id=None, payload=payload).save()
    logger.info(
        "order.%s order_id=%s dispute_id=%s status=%s amount=%s currency=%s",
        event_type,
        order.id,
        dispute.stripe_dispute_id,
        dispute.status,
        dispute.amount,
        dispute.currency_code,
    )
    return order
