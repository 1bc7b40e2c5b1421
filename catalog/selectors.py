from __future__ import annotations

from django.db.models import Exists, IntegerField, OuterRef, Prefetch, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from catalog.models import Category, Price, Product, Region, ShippingOption, StockReservation, Variant
from common.errors import NotFound


def region_list() -> QuerySet[Region]:
    return Region.objects.all()


def region_get(*, region_id: str) -> Region:
    region = Region.objects.filter(pk=region_id).first()
    if region is None:
        raise NotFound("No such region.", param="region_id")
    return region


def category_list() -> QuerySet[Category]:
    """Categories that have at least one product (a chip never leads to an empty list): 1 query."""
    return Category.objects.filter(Exists(Product.objects.filter(category_id=OuterRef("pk"))))


def product_list(*, currency_code: str | None, category_handle: str | None = None) -> QuerySet[Product]:
    """Products with their category, variants, stock and (when given) their price in one currency:
    3 queries, whatever the number of products. ``category_handle`` keeps that category's products
    (an unknown handle: none).

    Each variant carries ``held``: the units of its active reservations now (a subquery of the
    variants query), so an expired hold stops counting at once, not when the sweep runs."""
    prices = Price.objects.filter(currency_code=currency_code) if currency_code else Price.objects.none()
    holds = (
        StockReservation.objects.filter(variant_id=OuterRef("pk"), expires_at__gt=timezone.now())
        .values("variant_id")
        .annotate(total=Sum("quantity"))
        .values("total")
    )
    variants = (
        Variant.objects.select_related("stock")
        .annotate(held=Coalesce(Subquery(holds, output_field=IntegerField()), Value(0)))
        .prefetch_related(Prefetch("prices", queryset=prices, to_attr="region_prices"))
    )
    products = Product.objects.select_related("category").prefetch_related(Prefetch("variants", queryset=variants))
    if category_handle is not None:
        products = products.filter(category__handle=category_handle)
    return products


def product_get(*, product_id: str, currency_code: str | None) -> Product:
    product = product_list(currency_code=currency_code).filter(pk=product_id).first()
    if product is None:
        raise NotFound("No such product.")
    return product


def variant_get(*, variant_id: str) -> Variant:
    variant = Variant.objects.select_related("product").filter(pk=variant_id).first()
    if variant is None:
        raise NotFound("No such variant.", param="variant_id")
    return variant


def variant_price(*, variant_id: str, currency_code: str) -> int | None:
    return (
        Price.objects.filter(variant_id=variant_id, currency_code=currency_code)
        .values_list("amount", flat=True)
        .first()
    )


def prices_for(*, variant_ids: list[str], currency_code: str) -> dict[str, int]:
    rows = Price.objects.filter(variant_id__in=variant_ids, currency_code=currency_code)
    return dict(rows.values_list("variant_id", "amount"))


def shipping_option_list(*, region_id: str) -> QuerySet[ShippingOption]:
    return ShippingOption.objects.filter(region_id=region_id, is_active=True)


def shipping_option_get(*, option_id: str, region_id: str) -> ShippingOption:
    option = ShippingOption.objects.filter(pk=option_id, region_id=region_id, is_active=True).first()
    if option is None:
        raise NotFound("No such shipping option for this cart's region.", param="option_id")
    return option


def variant_in_stock(variant: Variant) -> bool:
    """On hand minus active holds (``held`` from ``product_list``) > 0: a hint for the storefront;
    the stock check that counts is the one at reservation and at completion."""
    if not variant.manage_inventory or variant.allow_backorder:
        return True
    stock = getattr(variant, "stock", None)
    return stock is not None and stock.on_hand - getattr(variant, "held", stock.reserved) > 0
