from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from carts import calculations
from carts.models import Cart, CartStatus
from common.errors import NotFound
from common.money import charge_increment


def _visible_to(cart: Cart, user_id: str | None) -> bool:
    return cart.customer_id is None or cart.customer_id == user_id


def cart_queryset() -> QuerySet[Cart]:
    return Cart.objects.select_related("region").prefetch_related("items")


def cart_get_for_customer(*, cart_id: str, user_id: str | None) -> Cart:
    """A guest cart is reachable by id alone; a customer's cart only by that customer (404 otherwise)."""
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
