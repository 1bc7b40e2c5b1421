from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet, Sum

from common.errors import NotFound
from orders.models import CheckoutIncident, Order, OrderEvent, OrderLine
from payments import ledger


def order_queryset() -> QuerySet[Order]:
    return Order.objects.prefetch_related("lines")


def order_get(*, order_id: str) -> Order:
    order = order_queryset().filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    return order


def order_get_for_cart(*, cart_id: str) -> Order:
    order = Order.objects.filter(cart_id=cart_id).first()
    if order is None:  # a completed cart always has its order (same transaction)
        raise NotFound("No order for this cart.")
    return order


def order_get_by_payment_intent(*, payment_intent_id: str) -> Order | None:
    return Order.objects.filter(payment_intent_id=payment_intent_id).first()


def order_get_for_customer(*, order_id: str, user_id: str | None) -> Order:
    """A customer's order only for that customer; a guest order by its unguessable id; else 404."""
    order = order_queryset().filter(pk=order_id).first()
    if order is None or (order.customer_id is not None and order.customer_id != user_id):
        raise NotFound("No such order.")
    return order


def order_list_for_customer(*, user_id: str) -> QuerySet[Order]:
    return order_queryset().filter(customer_id=user_id).order_by("-created_at", "-display_id")


def order_amounts(*, orders: Iterable[Order]) -> dict[str, ledger.LedgerTotals]:
    """Ledger totals of these orders' PaymentIntents, by order id (one query)."""
    orders = list(orders)
    totals = ledger.ledger_totals_for(payment_intent_ids=[o.payment_intent_id for o in orders])
    return {o.id: totals[o.payment_intent_id] for o in orders}


def order_line_quantities(*, order_id: str) -> dict[str, int]:
    """Units ordered per variant (lines of one variant summed), for restocking."""
    rows = OrderLine.objects.filter(order_id=order_id).values("variant_id").annotate(units=Sum("quantity"))
    return {row["variant_id"]: int(row["units"]) for row in rows}


def order_events(*, order_id: str) -> QuerySet[OrderEvent]:
    return OrderEvent.objects.filter(order_id=order_id).order_by("created_at", "id")


def checkout_incidents(*, cart_id: str | None = None) -> QuerySet[CheckoutIncident]:
    rows = CheckoutIncident.objects.all()
    return rows.filter(cart_id=cart_id) if cart_id else rows
