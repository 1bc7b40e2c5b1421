from __future__ import annotations

from collections.abc import Iterable

from django.contrib.postgres.aggregates import JSONBAgg
from django.db.models import F, JSONField, OuterRef, QuerySet, Subquery, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import JSONObject

from common.errors import NotFound
from orders.models import CheckoutIncident, FulfillmentStatus, Order, OrderEvent, OrderLine
from payments import ledger
from payments.models import LedgerEntry, LedgerEntryKind, LedgerEntryStatus

# Refund rows a shopper sees: in flight or done. A failed refund returned nothing, and a
# canceled row is one that another row records (orders.services.payment_ops).
SHOPPER_REFUND_STATUSES = (LedgerEntryStatus.PENDING, LedgerEntryStatus.SUCCEEDED)


def order_queryset() -> QuerySet[Order]:
    return Order.objects.prefetch_related("lines")


class _JSONRows(JSONBAgg):
    """``JSONB_AGG(… ORDER BY …)`` on PostgreSQL; on SQLite (the demo's database, whose version
    may predate ORDER BY inside aggregates) ``json_group_array``, which takes the rows in rowid
    order for one ``key`` value (a table scan, or an index on the key, whose equal entries are
    kept in rowid order): insertion order, which for these append-only rows is creation order."""

    def as_sqlite(self, compiler, connection, **extra_context):  # type: ignore[no-untyped-def]
        [expression] = self.get_source_expressions()[:1]
        sql, params = compiler.compile(expression)
        return f"JSON_GROUP_ARRAY(JSON({sql}))", params


def _json_rows(rows: QuerySet, *, key: str, **fields: object) -> Subquery:
    """The rows (all of one ``key`` value) as one JSON array, oldest first, computed inside the
    outer query; ``None`` when there are none."""
    aggregate = _JSONRows(JSONObject(**fields), order_by=("created_at", "id"))
    return Subquery(rows.order_by().values(key).annotate(rows=aggregate).values("rows"), output_field=JSONField())


def order_queryset_for_store() -> QuerySet[Order]:
    """Orders as the store API shows them: lines prefetched; shipments and refunds annotated
    (``shipment_rows``, ``refund_rows``: JSON arrays or ``None``) inside the order's own query,
    so an order, or a page of them, costs no query more for them.

    A shipment is a ``shipment_recorded`` event (orders.fulfillment): carrier, tracking number,
    ``tracking_url`` when one was recorded, shipped at the event's time, delivered at the first
    move to ``delivered`` after it. A refund is a ledger refund row of the order's PaymentIntent
    that is pending or succeeded (``SHOPPER_REFUND_STATUSES``).
    """
    delivered = OrderEvent.objects.filter(
        order_id=OuterRef("order_id"),
        type="fulfillment_status_changed",
        payload__to=FulfillmentStatus.DELIVERED,
        created_at__gte=OuterRef("created_at"),
    ).order_by("created_at", "id")
    shipments = OrderEvent.objects.filter(order_id=OuterRef("pk"), type="shipment_recorded")
    refunds = LedgerEntry.objects.filter(
        payment_intent_id=OuterRef("payment_intent_id"),
        kind=LedgerEntryKind.REFUND,
        status__in=SHOPPER_REFUND_STATUSES,
    )
    return order_queryset().annotate(
        shipment_rows=_json_rows(
            shipments,
            key="order_id",
            carrier=KT("payload__carrier"),
            tracking_number=KT("payload__tracking_number"),
            tracking_url=KT("payload__tracking_url"),
            shipped_at=F("created_at"),
            delivered_at=Subquery(delivered.values("created_at")[:1]),
        ),
        refund_rows=_json_rows(
            refunds, key="payment_intent_id", amount=F("amount"), status=F("status"), created_at=F("created_at")
        ),
    )


def order_for_store_just_placed(*, order: Order) -> Order:
    """The order ``order_place`` just created, shaped as ``order_get_for_store`` reads it, with no query.

    Its lines are the ones placement inserted (``placed_lines``, in position order, as the
    prefetch orders them); a new order has no shipment, and no refund row (placement refuses a
    payment whose money went back). Amounts still come from the ledger (``order_amounts``).
    """
    lines = list(order.placed_lines)  # type: ignore[attr-defined]  # set by order_place
    queryset = order.lines.all()
    queryset._result_cache = lines  # what prefetch_related stores: a queryset already evaluated
    queryset._prefetch_done = True  # type: ignore[attr-defined]  # Django internals, as prefetch_related sets them
    order._prefetched_objects_cache = {"lines": queryset}  # type: ignore[attr-defined]
    order.shipment_rows = None  # type: ignore[attr-defined]  # the annotations of order_queryset_for_store
    order.refund_rows = None  # type: ignore[attr-defined]
    return order


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


def order_get_for_store(*, order_id: str) -> Order:
    """One order as the store API shows it (``order_queryset_for_store``)."""
    order = order_queryset_for_store().filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    return order


def order_get_for_customer(*, order_id: str, user_id: str | None) -> Order:
    """A customer's order only for that customer; a guest order by its unguessable id; else 404."""
    order = order_queryset_for_store().filter(pk=order_id).first()
    if order is None or (order.customer_id is not None and order.customer_id != user_id):
        raise NotFound("No such order.")
    return order


def order_list_for_customer(*, user_id: str) -> QuerySet[Order]:
    return order_queryset_for_store().filter(customer_id=user_id).order_by("-created_at", "-display_id")


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
