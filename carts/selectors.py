from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.postgres.aggregates import JSONBAgg
from django.db.models import JSONField, OuterRef, QuerySet, Subquery
from django.db.models.functions import JSONObject
from django.utils import timezone

from carts import calculations
from carts.models import Cart, CartStatus, LineItem
from common import db
from common.errors import NotFound
from common.money import charge_increment
from payments import selectors as payment_selectors
from payments.models import PaymentSession

# What a cart response needs of its lines and of its active payment session.
LINE_READ_FIELDS = ("id", "variant_id", "sku", "title", "quantity", "unit_price")
SESSION_READ_FIELDS = ("id", "provider_id", "status", "amount", "currency_code", "client_secret", "payment_intent_id")
_SESSION_ATTR = "active_payment_session"
_UNREAD: Any = object()


def _visible_to(cart: Cart, user_id: str | None) -> bool:
    return cart.customer_id is None or cart.customer_id == user_id


def cart_queryset() -> QuerySet[Cart]:
    return Cart.objects.select_related("region").prefetch_related("items")


def cart_read_annotations() -> dict[str, Any]:
    """PostgreSQL: the cart's lines (in cart order) and its active payment session as JSON
    columns of the cart's own row, so one statement reads everything a cart response shows.
    ``items_json`` is NULL for no lines, ``session_json`` NULL for no active session."""
    lines = (
        LineItem.objects.filter(cart_id=OuterRef("pk"))
        .order_by()
        .values("cart_id")
        .annotate(rows=JSONBAgg(JSONObject(**{f: f for f in LINE_READ_FIELDS}), order_by=("created_at", "id")))
        .values("rows")
    )
    # The filter of payments.selectors.payment_session_active_for_cart, as a subquery.
    session = PaymentSession.objects.filter(cart_id=OuterRef("pk"), is_active=True).values(
        row=JSONObject(**{f: f for f in SESSION_READ_FIELDS})
    )[:1]
    return {
        "items_json": Subquery(lines, output_field=JSONField()),
        "session_json": Subquery(session, output_field=JSONField()),
    }


def cart_attach(*, cart: Cart, items_json: list[dict[str, Any]] | None, session_json: dict[str, Any] | None) -> None:
    """Hand ``cart`` its lines and active payment session read as JSON (no query)."""
    db.prefetched(cart, "items", [LineItem(cart_id=cart.id, **row) for row in items_json or []])
    setattr(cart, _SESSION_ATTR, PaymentSession(cart_id=cart.id, **session_json) if session_json else None)


def cart_attach_read(*, cart: Cart) -> None:
    """Read and attach ``cart``'s lines and active payment session: 1 statement on PostgreSQL."""
    if db.is_postgresql():
        row: Any = Cart.objects.filter(pk=cart.pk).values(**cart_read_annotations()).first() or {}
        cart_attach(cart=cart, items_json=row.get("items_json"), session_json=row.get("session_json"))
        return
    db.prefetched(cart, "items", LineItem.objects.filter(cart_id=cart.pk).order_by("created_at", "id"))
    setattr(cart, _SESSION_ATTR, payment_selectors.payment_session_active_for_cart(cart_id=cart.pk))


def cart_payment_session(*, cart: Cart) -> PaymentSession | None:
    """The cart's active payment session: the attached one, else read."""
    session = getattr(cart, _SESSION_ATTR, _UNREAD)
    if session is _UNREAD:
        return payment_selectors.payment_session_active_for_cart(cart_id=cart.id)
    return session  # type: ignore[no-any-return]


def cart_get_for_customer(*, cart_id: str, user_id: str | None) -> Cart:
    """A guest cart is reachable by id alone; a customer's cart only by that customer (404 otherwise).

    One statement on PostgreSQL: the cart, its region, its lines and its active payment session."""
    if db.is_postgresql():
        cart = Cart.objects.select_related("region").annotate(**cart_read_annotations()).filter(pk=cart_id).first()
        if cart is not None:
            cart_attach(cart=cart, items_json=getattr(cart, "items_json"), session_json=getattr(cart, "session_json"))  # noqa: B009
    else:
        cart = cart_queryset().filter(pk=cart_id).first()
    if cart is None or not _visible_to(cart, user_id):
        raise NotFound("No such cart.")
    return cart


def cart_check_visible(*, cart: Cart, user_id: str | None) -> None:
    if not _visible_to(cart, user_id):
        raise NotFound("No such cart.")


def cart_status(*, cart: Cart, now: datetime | None = None) -> str:
    """The status a shopper sees: an active cart past ``expires_at`` is expired even before
    the periodic ``carts_expire`` run has marked it."""
    if cart.status == CartStatus.ACTIVE and cart.expires_at <= (now or timezone.now()):
        return CartStatus.EXPIRED
    return cart.status


def cart_totals(*, cart: Cart) -> calculations.CartTotals:
    """Totals from the (prefetched) lines; no queries beyond ``cart.items.all()``."""
    return calculations.cart_totals(
        lines=[
            calculations.LineInput(key=item.id, unit_price=item.unit_price, quantity=item.quantity)
            for item in cart.items.all()
        ],
        shipping_amount=cart.shipping_amount or 0,
        tax_rate_bps=cart.region.tax_rate_bps,
        tax_inclusive=cart.region.tax_inclusive,
        increment=charge_increment(cart.currency_code),
    )
