"""Cart writes. Each service owns its transaction and locks the cart row first."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from carts.models import Cart, CartStatus, LineItem
from carts.selectors import cart_check_visible
from catalog import selectors as catalog_selectors
from catalog import services as catalog_services
from catalog.models import Region, Variant
from common.errors import ApplicationError, Conflict, Gone, NotFound, Unprocessable, ValidationError

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


@contextmanager
def _cart_write(*, cart_id: str, user_id: str | None) -> Iterator[Cart]:
    """Lock, check owner and state, let the caller change the cart, then touch it (version, expiry).

    An authenticated customer writing to a guest cart claims it: from then on only they see it.
    """
    with transaction.atomic():
        cart = cart_lock(cart_id=cart_id)
        cart_check_visible(cart=cart, user_id=user_id)
        cart_assert_writable(cart=cart)
        if user_id and cart.customer_id is None:
            cart.customer_id = user_id
            logger.info("cart.claimed cart_id=%s customer_id=%s", cart.id, user_id)
        yield cart
        now = timezone.now()
        cart.version = F("version") + 1
        cart.expires_at = now + settings.CART_TTL
        cart.save()
        # Any change invalidates the soft reservation; the payment session re-reserves.
        catalog_services.stock_release(cart_id=cart.id, now=now)
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


def _line_price(*, variant: Variant, currency_code: str) -> int:
    amount = catalog_selectors.variant_price(variant_id=variant.id, currency_code=currency_code)
    if amount is None:
        raise Unprocessable(
            f"Variant {variant.sku} has no price in {currency_code}.", code="variant_not_priced", param="variant_id"
        )
    return amount


def _line_add(*, cart: Cart, variant_id: str, quantity: int) -> None:
    variant = catalog_selectors.variant_get(variant_id=variant_id)
    existing = LineItem.objects.filter(cart=cart, variant=variant).first()
    new_quantity = quantity + (existing.quantity if existing else 0)
    if new_quantity > MAX_LINE_QUANTITY:
        raise ValidationError(f"Quantity may not exceed {MAX_LINE_QUANTITY}.", param="quantity")
    if existing:
        existing.quantity = new_quantity
        existing.save(update_fields=["quantity"])
        return
    if LineItem.objects.filter(cart=cart).count() >= MAX_LINES:
        raise ValidationError(f"A cart may hold at most {MAX_LINES} lines.", param="variant_id")
    LineItem.objects.create(
        cart=cart,
        variant=variant,
        sku=variant.sku,
        title=f"{variant.product.title} / {variant.title}"[: LineItem._meta.get_field("title").max_length],
        quantity=quantity,
        unit_price=_line_price(variant=variant, currency_code=cart.currency_code),
    )


def _reprice(*, cart: Cart, region: Region) -> None:
    items = list(cart.items.all())
    prices = catalog_selectors.prices_for(variant_ids=[i.variant_id for i in items], currency_code=region.currency_code)
    for item in items:
        if item.variant_id not in prices:
            raise Unprocessable(
                f"{item.sku} has no price in {region.currency_code}; remove it before changing region.",
                code="variant_not_priced",
                param="region_id",
            )
        item.unit_price = prices[item.variant_id]
    LineItem.objects.bulk_update(items, ["unit_price"])


def cart_create(
    *,
    region_id: str,
    email: str | None = None,
    items: list[dict[str, Any]] | None = None,
    customer_id: str | None = None,
) -> Cart:
    region = catalog_selectors.region_get(region_id=region_id)
    with transaction.atomic():
        cart = Cart.objects.create(
            region=region,
            currency_code=region.currency_code,
            email=email or "",
            customer_id=customer_id,
            expires_at=timezone.now() + settings.CART_TTL,
        )
        for item in items or []:
            _line_add(cart=cart, variant_id=item["variant_id"], quantity=item["quantity"])
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
) -> None:
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


def cart_line_add(*, cart_id: str, user_id: str | None, variant_id: str, quantity: int) -> None:
    with _cart_write(cart_id=cart_id, user_id=user_id) as cart:
        _line_add(cart=cart, variant_id=variant_id, quantity=quantity)


def cart_line_update(*, cart_id: str, user_id: str | None, item_id: str, quantity: int) -> None:
    with _cart_write(cart_id=cart_id, user_id=user_id) as cart:
        item = LineItem.objects.filter(cart=cart, pk=item_id).first()
        if item is None:
            raise NotFound("No such line item in this cart.", param="item_id")
        if quantity == 0:
            item.delete()
        else:
            item.quantity = quantity
            item.save(update_fields=["quantity"])


def cart_line_remove(*, cart_id: str, user_id: str | None, item_id: str) -> None:
    cart_line_update(cart_id=cart_id, user_id=user_id, item_id=item_id, quantity=0)


def cart_shipping_method_set(*, cart_id: str, user_id: str | None, option_id: str) -> None:
    with _cart_write(cart_id=cart_id, user_id=user_id) as cart:
        option = catalog_selectors.shipping_option_get(option_id=option_id, region_id=cart.region_id)
        cart.shipping_option = option
        cart.shipping_name = option.name
        cart.shipping_amount = option.amount


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
