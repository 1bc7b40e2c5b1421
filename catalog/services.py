"""Stock: soft reservations and consumption. Stock rows are always locked in primary-key order.

Available stock for a cart = on hand - active (unexpired) reservations of *other* carts.
``StockLevel.reserved`` mirrors the active reservations as of the last write (display only);
the reservation rows are authoritative.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from catalog.models import StockLevel, StockReservation, Variant
from common.errors import InsufficientInventory

logger = logging.getLogger(__name__)


def _stock_lock(*, variant_ids: list[str]) -> dict[str, StockLevel]:
    """Lock the stock rows of these variants, in primary-key order (deadlock-free)."""
    rows = (
        StockLevel.objects.select_for_update()
        .filter(variant_id__in=variant_ids)
        .select_related("variant")
        .order_by("pk")
    )
    return {row.variant_id: row for row in rows}


def _reserved_by_others(*, variant_ids: list[str], cart_id: str, now: datetime) -> dict[str, int]:
    rows = (
        StockReservation.objects.filter(variant_id__in=variant_ids, expires_at__gt=now)
        .exclude(cart_id=cart_id)
        .values("variant_id")
        .annotate(total=Sum("quantity"))
    )
    return {row["variant_id"]: row["total"] for row in rows}


def _tracked(stock: StockLevel) -> bool:
    return stock.variant.manage_inventory


def _refresh_reserved(*, stocks: list[StockLevel], now: datetime) -> None:
    if not stocks:
        return
    totals = dict(
        StockReservation.objects.filter(variant_id__in=[s.variant_id for s in stocks], expires_at__gt=now)
        .values("variant_id")
        .annotate(total=Sum("quantity"))
        .values_list("variant_id", "total")
    )
    for stock in stocks:
        stock.reserved = totals.get(stock.variant_id, 0)
    StockLevel.objects.bulk_update(stocks, ["reserved", "on_hand"])


def _check_available(*, stocks: dict[str, StockLevel], quantities: Mapping[str, int], others: dict[str, int]) -> None:
    for variant_id in sorted(quantities):
        stock = stocks.get(variant_id)
        if stock is None or not _tracked(stock) or stock.variant.allow_backorder:
            continue
        available = stock.on_hand - others.get(variant_id, 0)
        if quantities[variant_id] > available:
            raise InsufficientInventory(f"Only {max(available, 0)} left of {stock.variant.sku}.", param=variant_id)


@transaction.atomic
def stock_reserve(*, cart_id: str, quantities: Mapping[str, int], ttl: timedelta, now: datetime | None = None) -> None:
    """Replace this cart's reservations with ``quantities`` held until now + ttl, or raise 409."""
    now = now or timezone.now()
    variant_ids = sorted(quantities)
    stocks = _stock_lock(variant_ids=variant_ids)
    others = _reserved_by_others(variant_ids=variant_ids, cart_id=cart_id, now=now)
    _check_available(stocks=stocks, quantities=quantities, others=others)
    StockReservation.objects.filter(cart_id=cart_id).delete()
    tracked = [v for v in variant_ids if v in stocks and _tracked(stocks[v])]
    StockReservation.objects.bulk_create(
        StockReservation(variant_id=v, cart_id=cart_id, quantity=quantities[v], expires_at=now + ttl) for v in tracked
    )
    _refresh_reserved(stocks=[stocks[v] for v in tracked], now=now)
    logger.info("stock.reserved cart_id=%s lines=%s until=%s", cart_id, len(tracked), (now + ttl).isoformat())


def stock_release_for_carts(*, cart_ids: Sequence[str], now: datetime | None = None) -> int:
    """Drop every reservation of these carts (a fixed number of statements for any number of carts).

    Returns how many reservation rows were released. Callers hold the carts' row locks (cart
    first, then stock rows by pk), so no reservation of these carts appears meanwhile; when
    there is none -- the usual case for a cart write -- this costs one query and no savepoint.
    """
    now = now or timezone.now()
    if not cart_ids:
        return 0
    reservations = StockReservation.objects.filter(cart_id__in=list(cart_ids))
    variant_ids = sorted(set(reservations.values_list("variant_id", flat=True).distinct()))
    if not variant_ids:
        return 0
    with transaction.atomic():
        stocks = _stock_lock(variant_ids=variant_ids)
        deleted, _ = reservations.delete()
        _refresh_reserved(stocks=list(stocks.values()), now=now)
    logger.info("stock.released carts=%s rows=%s", len(cart_ids), deleted)
    return deleted


def stock_release_ctes() -> str:
    """``WITH`` clauses that release one cart's reservations inside the statement they open.

    PostgreSQL only. Parameters: ``%(cart_id)s`` and ``%(now)s``. The statement locks the cart's
    reserved stock rows in primary-key order before it deletes any reservation (the fixed lock
    order: cart, then stock rows), deletes the reservations (``released`` returns one row per
    deleted reservation) and refreshes ``reserved`` on those stock rows from the remaining active
    reservations: a fixed cost for any number of lines, and nothing is locked when the cart holds
    nothing. The caller holds the cart's row lock, so no reservation of the cart appears meanwhile.
    """
    reservations = StockReservation._meta.db_table
    stock = StockLevel._meta.db_table
    return (
        f"held AS (SELECT variant_id FROM {reservations} WHERE cart_id = %(cart_id)s), "
        f"stock_locked AS (SELECT id FROM {stock} WHERE variant_id IN (SELECT variant_id FROM held) "
        "ORDER BY id FOR UPDATE), "
        f"released AS (DELETE FROM {reservations} WHERE cart_id = %(cart_id)s "
        "AND (SELECT count(*) FROM stock_locked) >= 0 RETURNING variant_id), "
        f"stock_refreshed AS (UPDATE {stock} SET reserved = COALESCE((SELECT SUM(r.quantity) "
        f"FROM {reservations} r WHERE r.variant_id = {stock}.variant_id AND r.expires_at > %(now)s "
        f"AND r.cart_id <> %(cart_id)s), 0) WHERE id IN (SELECT id FROM stock_locked) RETURNING id)"
    )


def stock_release(*, cart_id: str, now: datetime | None = None) -> int:
    """Drop every reservation of this cart. Returns how many rows were released."""
    return stock_release_for_carts(cart_ids=[cart_id], now=now)


def stock_consume(*, cart_id: str, quantities: Mapping[str, int], now: datetime | None = None) -> None:
    """Decrement on-hand stock for an order. Must run inside the caller's transaction.

    Raises ``InsufficientInventory`` (and the caller's transaction rolls back) when a
    tracked, non-backorderable variant lacks stock after other carts' active reservations.
    """
    now = now or timezone.now()
    variant_ids = sorted(quantities)
    stocks = _stock_lock(variant_ids=variant_ids)
    others = _reserved_by_others(variant_ids=variant_ids, cart_id=cart_id, now=now)
    _check_available(stocks=stocks, quantities=quantities, others=others)
    tracked = [stocks[v] for v in variant_ids if v in stocks and _tracked(stocks[v])]
    for stock in tracked:
        stock.on_hand -= quantities[stock.variant_id]
    StockReservation.objects.filter(cart_id=cart_id).delete()
    _refresh_reserved(stocks=tracked, now=now)


def stock_lock(*, variant_ids: Sequence[str]) -> None:
    """Lock these variants' stock rows (pk order) ahead of a later lock in the fixed order.

    For a caller that must take the stock rows before another row (cart, stock rows, order,
    counter) and decides only under that other lock what to write to them (``stock_restock``).
    Inside the caller's transaction.
    """
    _stock_lock(variant_ids=sorted(set(variant_ids)))


def stock_restock(*, quantities: Mapping[str, int], now: datetime | None = None) -> dict[str, int]:
    """Put units back on hand (an order canceled before it was fulfilled). Inside the caller's transaction.

    Locks the stock rows in primary-key order. Only variants with ``manage_inventory`` (and a
    stock row) are restocked; returns ``{variant_id: quantity}`` of what was put back.
    """
    now = now or timezone.now()
    variant_ids = sorted(v for v, quantity in quantities.items() if quantity > 0)
    if not variant_ids:
        return {}
    stocks = _stock_lock(variant_ids=variant_ids)
    tracked = [stocks[v] for v in variant_ids if v in stocks and _tracked(stocks[v])]
    for stock in tracked:
        stock.on_hand += quantities[stock.variant_id]
    _refresh_reserved(stocks=tracked, now=now)
    restocked = {stock.variant_id: quantities[stock.variant_id] for stock in tracked}
    if restocked:
        logger.info("stock.restocked variants=%s units=%s", len(restocked), sum(restocked.values()))
    return restocked


def stock_reservations_expire(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Delete expired reservations in batches and refresh the affected stock rows."""
    now = now or timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            ids = list(
                StockReservation.objects.filter(expires_at__lte=now)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                return total
            variant_ids = sorted(set(StockReservation.objects.filter(pk__in=ids).values_list("variant_id", flat=True)))
            stocks = _stock_lock(variant_ids=variant_ids)
            StockReservation.objects.filter(pk__in=ids).delete()
            _refresh_reserved(stocks=list(stocks.values()), now=now)
            total += len(ids)


def stock_set(*, variant: Variant, on_hand: int) -> StockLevel:
    stock, _ = StockLevel.objects.update_or_create(variant=variant, defaults={"on_hand": on_hand})
    return stock
