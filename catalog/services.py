"""Stock: soft reservations and consumption. Stock rows are always locked in primary-key order.

Available stock for a cart = on hand - active (unexpired) reservations of *other* carts.
``StockLevel.reserved`` mirrors the active reservations as of the last write (display only);
the reservation rows are authoritative.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from catalog.models import StockLevel, StockReservation, Variant
from common import db
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


def _stock_hold_sql(*, consume: bool) -> str:
    """The one statement of ``stock_reserve`` (``consume=False``) and ``stock_consume`` (``True``).

    PostgreSQL only. Parameters: ``cart_id``, ``now``, ``variant_ids`` / ``quantities`` (parallel
    arrays) and, to reserve, ``expires_at``. In order:

    - ``locked``: the stock rows of the requested variants and of those the cart holds now, locked
      in primary-key order (``ORDER BY`` runs before ``FOR UPDATE``: the fixed lock order, after the
      caller's cart row). Only stock rows are locked, not variants.
    - ``stale``: a locked row newer than the statement's snapshot (another transaction wrote it, and
      so may have added or dropped reservations, after this statement began). Every writer of
      reservations (reserve, consume, release, expiry; the admin only deletes) locks their
      variants' stock rows and writes them in the same transaction, so this is exactly the case
      where the reservation sums below, read from that snapshot, may be out of date; the statement
      then changes nothing and the caller runs it again, now holding the locks (never stale twice).
    - ``checked``: per requested variant with a stock row, the units available to this cart (on
      hand - other carts' unexpired reservations) and whether the request is short.
    - ``go``: neither short nor stale. Every write below is conditioned on it, so a refused
      statement leaves no partial reservation (nor anything else) behind.
    - reserve: upsert the cart's reservations of its tracked variants (``now + ttl``), drop its
      others; consume: decrement ``on_hand`` and drop all the cart's reservations. Either way
      ``reserved`` becomes the unexpired reservations as they are after the statement.

    One row per requested variant comes back (or one row of NULLs when none has a stock row).
    """
    qn = connection.ops.quote_name
    reservations = qn(StockReservation._meta.db_table)
    stock = qn(StockLevel._meta.db_table)
    variant = qn(Variant._meta.db_table)
    if consume:
        holds = (
            f"held_dropped AS (DELETE FROM {reservations} WHERE cart_id = %(cart_id)s "
            "AND (SELECT go FROM decision) RETURNING variant_id), "
        )
        kept = "0"
        on_hand = "s.on_hand - COALESCE(q.quantity, 0)"
    else:
        holds = (
            f"held_kept AS (INSERT INTO {reservations} (variant_id, cart_id, quantity, expires_at, created_at) "
            "SELECT c.variant_id, %(cart_id)s, c.quantity, %(expires_at)s, %(created_at)s FROM checked c "
            "WHERE c.manage_inventory AND (SELECT go FROM decision) "
            "ON CONFLICT (cart_id, variant_id) DO UPDATE SET quantity = EXCLUDED.quantity, "
            "expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at RETURNING variant_id), "
            f"held_dropped AS (DELETE FROM {reservations} WHERE cart_id = %(cart_id)s AND variant_id NOT IN "
            "(SELECT variant_id FROM checked WHERE manage_inventory) AND (SELECT go FROM decision) "
            "RETURNING variant_id), "
        )
        kept = "CASE WHEN %(expires_at)s > %(now)s THEN COALESCE(q.quantity, 0) ELSE 0 END"
        on_hand = "s.on_hand"
    return (
        "WITH requested AS (SELECT * FROM unnest(%(variant_ids)s::varchar[], %(quantities)s::integer[]) "
        "AS r(variant_id, quantity)), "
        f"held AS (SELECT variant_id FROM {reservations} WHERE cart_id = %(cart_id)s), "
        f"locked AS (SELECT s.id, s.variant_id, s.on_hand, s.xmin::text AS version FROM {stock} s "
        "WHERE s.variant_id IN (SELECT variant_id FROM requested UNION SELECT variant_id FROM held) "
        "ORDER BY s.id FOR UPDATE), "
        f"stale AS (SELECT l.id FROM locked l JOIN {stock} s ON s.id = l.id WHERE s.xmin::text <> l.version), "
        f"others AS (SELECT r.variant_id, SUM(r.quantity) AS total FROM {reservations} r "
        "WHERE r.variant_id IN (SELECT variant_id FROM locked) AND r.expires_at > %(now)s "
        "AND r.cart_id <> %(cart_id)s GROUP BY r.variant_id), "
        "checked AS (SELECT q.variant_id, q.quantity, v.sku, v.manage_inventory, "
        "l.on_hand - COALESCE(o.total, 0) AS available, "
        "(v.manage_inventory AND NOT v.allow_backorder AND q.quantity > l.on_hand - COALESCE(o.total, 0)) AS short "
        f"FROM requested q JOIN locked l ON l.variant_id = q.variant_id JOIN {variant} v ON v.id = q.variant_id "
        "LEFT JOIN others o ON o.variant_id = q.variant_id), "
        "decision AS (SELECT NOT EXISTS (SELECT 1 FROM checked WHERE short) "
        "AND NOT EXISTS (SELECT 1 FROM stale) AS go), "
        f"{holds}"
        f"stock_written AS (UPDATE {stock} s SET on_hand = {on_hand}, "
        f"reserved = COALESCE(o.total, 0) + {kept} "
        "FROM locked l LEFT JOIN checked q ON q.variant_id = l.variant_id LEFT JOIN others o ON o.variant_id = l.variant_id "
        "WHERE s.id = l.id AND (q.manage_inventory OR (q.variant_id IS NULL AND l.variant_id IN (SELECT variant_id FROM held))) "
        "AND (SELECT go FROM decision) RETURNING s.id) "
        "SELECT (SELECT go FROM decision), EXISTS (SELECT 1 FROM stale), c.variant_id, c.sku, c.available, c.short, "
        "c.manage_inventory, (SELECT count(*) FROM stock_written) "
        "FROM (SELECT 1) AS one LEFT JOIN checked c ON true"
    )


def _stock_hold(*, cart_id: str, quantities: Mapping[str, int], now: datetime, expires_at: datetime | None) -> int:
    """Run ``_stock_hold_sql`` until it is not stale; raise 409 when short (nothing changed).

    Returns how many requested variants are tracked (hold a reservation / had on hand decremented).
    The first run takes the locks, so a second one -- inside the caller's transaction -- is never stale.
    """
    variant_ids = sorted(quantities)
    params: dict[str, Any] = {
        "cart_id": cart_id,
        "now": now,
        "variant_ids": variant_ids,
        "quantities": [quantities[v] for v in variant_ids],
        "expires_at": expires_at,
        "created_at": timezone.now(),
    }
    sql = _stock_hold_sql(consume=expires_at is None)
    with transaction.atomic(savepoint=False):  # the locks outlive the first run (autocommit callers)
        while True:
            rows = db.fetch_all(sql, params)
            go, stale = rows[0][0], rows[0][1]
            if not stale:
                break
            logger.info("stock.hold_retried cart_id=%s", cart_id)
    if not go:
        short = sorted((r for r in rows if r[5]), key=lambda r: r[2])[0]
        raise InsufficientInventory(f"Only {max(short[4], 0)} left of {short[3]}.", param=short[2])
    return sum(1 for r in rows if r[6])


def stock_reserve(*, cart_id: str, quantities: Mapping[str, int], ttl: timedelta, now: datetime | None = None) -> None:
    """Replace this cart's reservations with ``quantities`` held until now + ttl, or raise 409.

    One statement on PostgreSQL (``_stock_hold_sql``); refused, it changes nothing.
    """
    now = now or timezone.now()
    if db.is_postgresql():
        tracked = _stock_hold(cart_id=cart_id, quantities=quantities, now=now, expires_at=now + ttl)
    else:
        tracked = _stock_reserve_orm(cart_id=cart_id, quantities=quantities, ttl=ttl, now=now)
    logger.info("stock.reserved cart_id=%s lines=%s until=%s", cart_id, tracked, (now + ttl).isoformat())


@transaction.atomic
def _stock_reserve_orm(*, cart_id: str, quantities: Mapping[str, int], ttl: timedelta, now: datetime) -> int:
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
    return len(tracked)


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
    """Decrement on-hand stock for an order and drop the cart's reservations. Must run inside the
    caller's transaction; one statement on PostgreSQL (``_stock_hold_sql``).

    Raises ``InsufficientInventory`` (and the caller's transaction rolls back) when a
    tracked, non-backorderable variant lacks stock after other carts' active reservations.
    """
    now = now or timezone.now()
    if db.is_postgresql():
        _stock_hold(cart_id=cart_id, quantities=quantities, now=now, expires_at=None)
        return
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
