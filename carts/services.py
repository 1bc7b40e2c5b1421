"""Cart writes. Each service owns its transaction and locks the cart row first."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from carts import selectors
from carts.models import Cart, CartStatus, LineItem
from carts.selectors import cart_check_visible
from catalog import selectors as catalog_selectors
from catalog import services as catalog_services
from catalog.models import Price, Product, Region, Variant
from common import db
from common.errors import ApplicationError, Conflict, Gone, NotFound, Unprocessable, ValidationError
from common.ids import new_id

logger = logging.getLogger(__name__)

MAX_LINE_QUANTITY = 10_000
MAX_LINES = 200


def cart_lock(*, cart_id: str) -> Cart:
    """SELECT ... FOR UPDATE the cart row. Lock order everywhere: cart, then stock rows (by pk)."""
    cart = Cart.objects.select_for_update(of=("self",)).select_related("region").filter(pk=cart_id).first()
    if cart is None:
        raise NotFound("No such cart.")
    return cart


def cart_assert_writable(*, cart: Cart, now: datetime | None = None) -> None:
    now = now or timezone.now()
    if cart.status == CartStatus.COMPLETED:
        raise ApplicationError("This cart is already completed.", code="cart_completed", http_status=400)
    if cart.status == CartStatus.COMPLETING:
        raise Conflict("This cart is being completed.", code="cart_completing")
    if cart.status == CartStatus.EXPIRED or cart.expires_at <= now:
        expired_on = cart.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise Gone(f"This cart expired on {expired_on}.", code="cart_expired")


def _cart_lock_read(*, cart_id: str) -> Cart:
    """Lock the cart row and read it with its region, lines and active payment session.

    PostgreSQL: one ``SELECT ... FOR UPDATE`` with the lines and the session as JSON columns.
    A statement that had to wait for the lock gets the locked row as the other writer committed
    it, but its subqueries still see the statement's snapshot, taken before that commit: the
    ``seen_version`` column (the version in that snapshot) then differs from the locked row's, and
    the lines and session are read again (one more statement, only under contention).
    Elsewhere (the SQLite demo) ``cart_lock`` and a separate read.
    """
    if not db.is_postgresql():
        cart = cart_lock(cart_id=cart_id)
        selectors.cart_attach_read(cart=cart)
        return cart
    seen_version = Subquery(Cart.objects.filter(pk=OuterRef("pk")).values("version")[:1])
    rows = list(
        Cart.objects.select_for_update(of=("self",))
        .select_related("region")
        .annotate(**selectors.cart_read_annotations(), seen_version=seen_version)
        .filter(pk=cart_id)
    )
    if not rows:
        raise NotFound("No such cart.")
    cart = rows[0]
    annotated: Any = cart
    if annotated.seen_version != cart.version:
        selectors.cart_attach_read(cart=cart)
    else:
        selectors.cart_attach(cart=cart, items_json=annotated.items_json, session_json=annotated.session_json)
    return cart


# The cart columns a write may change; written by _cart_touch with version + 1.
_TOUCHED_FIELDS = (
    "email",
    "region",
    "currency_code",
    "customer",
    "shipping_address",
    "billing_address",
    "shipping_option",
    "shipping_name",
    "shipping_amount",
    "expires_at",
    "updated_at",
)


def _touched_fields() -> list[models.Field[Any, Any]]:
    fields = [Cart._meta.get_field(name) for name in _TOUCHED_FIELDS]
    return [f for f in fields if isinstance(f, models.Field)]


def _cart_touch(*, cart: Cart, now: datetime) -> None:
    """Write the cart's changed columns, bump ``version``, extend ``expires_at`` and release the
    cart's stock hold (any change invalidates it; the payment session re-reserves): one statement
    on PostgreSQL."""
    cart.expires_at = now + settings.CART_TTL
    cart.updated_at = now
    if not db.is_postgresql():
        values = {f.attname: getattr(cart, f.attname) for f in _touched_fields()}
        Cart.objects.filter(pk=cart.pk).update(version=F("version") + 1, **values)
        cart.version += 1
        catalog_services.stock_release(cart_id=cart.id, now=now)
        return
    fields = _touched_fields()
    qn = connection.ops.quote_name
    params: dict[str, Any] = {"cart_id": cart.pk, "now": now}
    params.update({f"v_{f.column}": f.get_db_prep_save(getattr(cart, f.attname), connection) for f in fields})
    assignments = ", ".join(f"{qn(f.column)} = %(v_{f.column})s" for f in fields)
    sql = (
        f"WITH {catalog_services.stock_release_ctes()} "
        f"UPDATE {qn(Cart._meta.db_table)} SET {assignments}, {qn('version')} = {qn('version')} + 1 "
        f"WHERE {qn('id')} = %(cart_id)s RETURNING {qn('version')}, (SELECT count(*) FROM released)"
    )
    ((version, released),) = db.fetch_all(sql, params)
    cart.version = version
    if released:
        logger.info("stock.released carts=1 rows=%s", released)


@contextmanager
def _cart_write(*, cart_id: str, user_id: str | None) -> Iterator[Cart]:
    """Lock and read, check owner and state, let the caller change the cart, then touch it
    (version, expiry, stock hold). The cart handed back carries its lines and payment session
    as they are after the write, so the response needs no read-back.

    An authenticated customer writing to a guest cart claims it: from then on only they see it.
    """
    with db.write_atomic():
        cart = _cart_lock_read(cart_id=cart_id)
        cart_check_visible(cart=cart, user_id=user_id)
        cart_assert_writable(cart=cart)
        if user_id and cart.customer_id is None:
            cart.customer_id = user_id
            logger.info("cart.claimed cart_id=%s customer_id=%s", cart.id, user_id)
        yield cart
        _cart_touch(cart=cart, now=timezone.now())
    logger.info("cart.updated cart_id=%s", cart_id)


def _validate_address(*, address: dict[str, Any], region: Region, param: str) -> dict[str, Any]:
    country = address.get("country_code")
    if country not in region.countries:
        raise ValidationError(
            f"Country {country} is not in the cart's region {region.name}.",
            code="country_not_in_region",
            param=f"{param}.country_code",
        )
    return address


def _lines(cart: Cart) -> list[LineItem]:
    return list(cart.items.all())  # attached by _cart_lock_read: no query


def _merge_items(items: list[dict[str, Any]]) -> dict[str, int]:
    """Quantities per variant in first-seen order (the same variant twice is one line)."""
    merged: dict[str, int] = {}
    for item in items:
        merged[item["variant_id"]] = merged.get(item["variant_id"], 0) + item["quantity"]
    for quantity in merged.values():
        if quantity > MAX_LINE_QUANTITY:
            raise ValidationError(f"Quantity may not exceed {MAX_LINE_QUANTITY}.", param="quantity")
    if len(merged) > MAX_LINES:
        raise ValidationError(f"A cart may hold at most {MAX_LINES} lines.", param="variant_id")
    return merged


def _raise_for_missing(*, variant_id: str, currency_code: str) -> None:
    """A requested variant did not become a line: it does not exist (404) or has no price (422)."""
    variant = catalog_selectors.variant_get(variant_id=variant_id)
    raise Unprocessable(
        f"Variant {variant.sku} has no price in {currency_code}.", code="variant_not_priced", param="variant_id"
    )


def _lines_insert(*, cart: Cart, quantities: dict[str, int], now: datetime) -> list[LineItem]:
    """Insert one line per variant (none in the cart yet), priced in the cart's currency and titled
    from the catalog by the database: one ``INSERT ... SELECT`` for any number of lines on
    PostgreSQL (one per line elsewhere). Lines keep the request's order (``created_at`` steps by
    a microsecond). Raises 404 / 422 for the first variant that does not exist or has no price."""
    variant_ids = list(quantities)
    ids = [new_id("item") for _ in variant_ids]
    created = [now + timedelta(microseconds=i) for i in range(len(variant_ids))]
    line = LineItem._meta.db_table
    select = (
        f"SELECT {{id}}, %(cart_id)s, v.id, v.sku, SUBSTR(p.title || ' / ' || v.title, 1, %(title_max)s), "
        f"{{quantity}}, pr.amount, {{created_at}} FROM {{source}} "
        f"JOIN {Variant._meta.db_table} v ON v.id = {{variant_id}} "
        f"JOIN {Product._meta.db_table} p ON p.id = v.product_id "
        f"JOIN {Price._meta.db_table} pr ON pr.variant_id = v.id AND pr.currency_code = %(currency)s"
    )
    insert = f"INSERT INTO {line} (id, cart_id, variant_id, sku, title, quantity, unit_price, created_at) "
    returning = " RETURNING id, variant_id, sku, title, quantity, unit_price"
    params: dict[str, Any] = {
        "cart_id": cart.pk,
        "currency": cart.currency_code,
        "title_max": LineItem._meta.get_field("title").max_length,
    }
    rows: list[tuple[Any, ...]] = []
    if db.is_postgresql():
        sql = insert + select.format(
            id="i.id",
            quantity="i.quantity",
            created_at="i.created_at",
            variant_id="i.variant_id",
            source="unnest(%(ids)s::text[], %(variant_ids)s::text[], %(quantities)s::int[], "
            "%(created)s::timestamptz[]) AS i(id, variant_id, quantity, created_at)",
        )
        params.update(ids=ids, variant_ids=variant_ids, quantities=list(quantities.values()), created=created)
        rows = db.fetch_all(sql + returning, params)
    else:
        sql = insert + select.format(
            id="%(id)s",
            quantity="%(quantity)s",
            created_at="%(created_at)s",
            variant_id="%(variant_id)s",
            source="(SELECT 1) AS one",
        )
        for item_id, variant_id, at in zip(ids, variant_ids, created, strict=True):
            params.update(
                id=item_id,
                variant_id=variant_id,
                quantity=quantities[variant_id],
                created_at=connection.ops.adapt_datetimefield_value(at),
            )
            rows += db.fetch_all(sql + returning, params)
    by_variant = {row[1]: row for row in rows}
    for variant_id in variant_ids:
        if variant_id not in by_variant:
            _raise_for_missing(variant_id=variant_id, currency_code=cart.currency_code)
    order = {item_id: i for i, item_id in enumerate(ids)}
    lines = [
        LineItem(id=r[0], cart_id=cart.pk, variant_id=r[1], sku=r[2], title=r[3], quantity=r[4], unit_price=r[5])
        for r in rows
    ]
    return sorted(lines, key=lambda item: order[item.id])


def _line_add(*, cart: Cart, variant_id: str, quantity: int) -> None:
    lines = _lines(cart)
    existing = next((item for item in lines if item.variant_id == variant_id), None)
    new_quantity = quantity + (existing.quantity if existing else 0)
    if new_quantity > MAX_LINE_QUANTITY:
        raise ValidationError(f"Quantity may not exceed {MAX_LINE_QUANTITY}.", param="quantity")
    if existing:
        LineItem.objects.filter(pk=existing.pk).update(quantity=new_quantity)
        existing.quantity = new_quantity
        return
    if len(lines) >= MAX_LINES:
        raise ValidationError(f"A cart may hold at most {MAX_LINES} lines.", param="variant_id")
    lines += _lines_insert(cart=cart, quantities={variant_id: quantity}, now=timezone.now())
    db.prefetched(cart, "items", lines)


def _reprice(*, cart: Cart, region: Region) -> None:
    """Every line at its price in the new region's currency: one ``UPDATE ... FROM`` for any
    number of lines; 422 (and nothing changed) when a line has no price there."""
    lines = _lines(cart)
    if not lines:
        return
    line, price = LineItem._meta.db_table, Price._meta.db_table
    rows = db.fetch_all(
        f"UPDATE {line} SET unit_price = {price}.amount FROM {price} "
        f"WHERE {line}.cart_id = %(cart_id)s AND {price}.variant_id = {line}.variant_id "
        f"AND {price}.currency_code = %(currency)s RETURNING {line}.id, {line}.unit_price",
        {"cart_id": cart.pk, "currency": region.currency_code},
    )
    prices = dict(rows)
    for item in lines:
        if item.id not in prices:
            raise Unprocessable(
                f"{item.sku} has no price in {region.currency_code}; remove it before changing region.",
                code="variant_not_priced",
                param="region_id",
            )
        item.unit_price = prices[item.id]


def cart_create(
    *,
    region_id: str,
    email: str | None = None,
    items: list[dict[str, Any]] | None = None,
    customer_id: str | None = None,
) -> Cart:
    """A new cart with its first lines: region (1), cart (1), all lines (1) on PostgreSQL."""
    region = catalog_selectors.region_get(region_id=region_id)
    quantities = _merge_items(items or [])
    with db.write_atomic():
        cart = Cart.objects.create(
            region=region,
            currency_code=region.currency_code,
            email=email or "",
            customer_id=customer_id,
            expires_at=timezone.now() + settings.CART_TTL,
        )
        lines = _lines_insert(cart=cart, quantities=quantities, now=cart.created_at) if quantities else []
    selectors.cart_attach(cart=cart, items_json=None, session_json=None)
    db.prefetched(cart, "items", lines)
    logger.info("cart.created cart_id=%s region_id=%s customer_id=%s", cart.id, region.id, customer_id)
    return cart


_UNSET: Any = object()


def cart_update(
    *,
    cart_id: str,
    user_id: str | None,
    email: str | None = _UNSET,
    region_id: str | None = _UNSET,
    shipping_address: dict[str, Any] | None = _UNSET,
    billing_address: dict[str, Any] | None = _UNSET,
) -> Cart:
    with _cart_write(cart_id=cart_id, user_id=user_id) as cart:
        if email is not _UNSET:
            cart.email = email or ""
        if region_id is not _UNSET and region_id != cart.region_id:
            region = catalog_selectors.region_get(region_id=str(region_id))
            _reprice(cart=cart, region=region)
            cart.region = region
            cart.currency_code = region.currency_code
            cart.shipping_option = None
            cart.shipping_name = ""
            cart.shipping_amount = None
            # A shipping address outside the new region is dropped; billing may be anywhere.
            if cart.shipping_address and cart.shipping_address.get("country_code") not in region.countries:
                cart.shipping_address = None
        if shipping_address is not _UNSET:
            cart.shipping_address = (
                _validate_address(address=shipping_address, region=cart.region, param="shipping_address")
                if shipping_address
                else None
            )
        if billing_address is not _UNSET:
            # Billing addresses are checked for shape only: a card may be billed in any country.
            cart.billing_address = billing_address or None
    return cart


def cart_line_add(*, cart_id: str, user_id: str | None, variant_id: str, quantity: int) -> Cart:
    with _cart_write(cart_id=cart_id, user_id=user_id) as cart:
        _line_add(cart=cart, variant_id=variant_id, quantity=quantity)
    return cart


def cart_line_update(*, cart_id: str, user_id: str | None, item_id: str, quantity: int) -> Cart:
    with _cart_write(cart_id=cart_id, user_id=user_id) as cart:
        lines = _lines(cart)
        item = next((line for line in lines if line.id == item_id), None)
        if item is None:
            raise NotFound("No such line item in this cart.", param="item_id")
        if quantity == 0:
            LineItem.objects.filter(pk=item.pk).delete()
            db.prefetched(cart, "items", [line for line in lines if line is not item])
        else:
            LineItem.objects.filter(pk=item.pk).update(quantity=quantity)
            item.quantity = quantity
    return cart


def cart_line_remove(*, cart_id: str, user_id: str | None, item_id: str) -> Cart:
    return cart_line_update(cart_id=cart_id, user_id=user_id, item_id=item_id, quantity=0)


def cart_shipping_method_set(*, cart_id: str, user_id: str | None, option_id: str) -> Cart:
    with _cart_write(cart_id=cart_id, user_id=user_id) as cart:
        option = catalog_selectors.shipping_option_get(option_id=option_id, region_id=cart.region_id)
        cart.shipping_option = option
        cart.shipping_name = option.name
        cart.shipping_amount = option.amount
    return cart


def carts_expire(
    *,
    now: datetime | None = None,
    batch_size: int = 500,
    on_batch: Callable[[int, int], None] | None = None,
) -> int:
    """Mark active carts past ``expires_at`` as expired, in batches; return how many were marked.

    Constant memory (one batch of ids at a time, each batch its own short transaction) and
    idempotent (only ``active`` carts move, so a second run marks nothing). Rows locked by a
    concurrent write are skipped and picked up by the next run. Carts being completed are
    left alone; expired carts are kept, so a late webhook can still find them. Their stock
    reservations are released. ``on_batch(batch, total)`` is called after each batch.
    """
    now = now or timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            ids = list(
                Cart.objects.select_for_update(skip_locked=True)
                .filter(status=CartStatus.ACTIVE, expires_at__lte=now)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                break
            # Transition active -> expired; the status filter above is the transition check.
            Cart.objects.filter(pk__in=ids, status=CartStatus.ACTIVE).update(status=CartStatus.EXPIRED, updated_at=now)
            catalog_services.stock_release_for_carts(cart_ids=ids, now=now)
        total += len(ids)
        if on_batch is not None:
            on_batch(len(ids), total)
    logger.info("carts.expired count=%s before=%s", total, now.isoformat())
    return total
