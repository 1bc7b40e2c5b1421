from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Mod
from django.db.models.lookups import Exact

from common.ids import PublicIdField
from common.money import THREE_DECIMAL, charge_increment

_CURRENCY_RE = re.compile(r"^[a-z]{3}$")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")


def _check_chargeable(*, amount: int | None, currency_code: str, field: str) -> None:
    """Catalog pricing rule: amounts are multiples of the currency's charge increment (10 fils for KWD)."""
    increment = charge_increment(currency_code)
    if amount is not None and amount % increment:
        raise ValidationError(
            {field: f"Amounts in {currency_code.upper()} must be multiples of {increment} minor units (card payments)."}
        )


class Region(models.Model):
    id = PublicIdField(prefix="reg")
    name = models.CharField(max_length=100)
    currency_code = models.CharField(max_length=3, help_text="Lower-case ISO 4217, e.g. usd.")
    countries = models.JSONField(default=list, help_text='Upper-case ISO 3166-1 alpha-2 codes, e.g. ["US"].')
    tax_rate_bps = models.PositiveIntegerField(default=0, help_text="Tax rate in basis points: 875 = 8.75%.")
    tax_inclusive = models.BooleanField(default=False, help_text="Prices already contain tax.")

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=Q(tax_rate_bps__lte=100_000), name="region_tax_rate_sane")]

    def __str__(self) -> str:
        return f"{self.name} ({self.currency_code})"

    def clean(self) -> None:
        if not _CURRENCY_RE.match(self.currency_code or ""):
            raise ValidationError({"currency_code": "Use a lower-case ISO 4217 code, e.g. usd."})
        if not isinstance(self.countries, list) or not all(
            isinstance(c, str) and _COUNTRY_RE.match(c) for c in self.countries
        ):
            raise ValidationError({"countries": 'Use a list of upper-case ISO 3166-1 alpha-2 codes, e.g. ["US"].'})


class Category(models.Model):
    """A storefront filter (Cotton, Linen, ...): a product is in at most one."""

    id = PublicIdField(prefix="pcat")
    handle = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=100)
    position = models.IntegerField(default=0, help_text="Lower comes first on the storefront.")

    class Meta:
        ordering = ["position", "name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    id = PublicIdField(prefix="prod")
    title = models.CharField(max_length=200)
    handle = models.SlugField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="products")
    thumbnail = models.CharField(
        max_length=500,
        blank=True,
        help_text="A URL path on this site (e.g. /media/products/cotton-poplin.svg) or an absolute URL.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title", "id"]

    def __str__(self) -> str:
        return self.title


class Variant(models.Model):
    id = PublicIdField(prefix="variant")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="variants")
    sku = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    manage_inventory = models.BooleanField(default=True)
    allow_backorder = models.BooleanField(default=False)

    class Meta:
        ordering = ["product_id", "sku"]

    def __str__(self) -> str:
        return f"{self.sku} {self.title}"


class Price(models.Model):
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="prices")
    currency_code = models.CharField(max_length=3)
    amount = models.PositiveBigIntegerField(help_text="Minor units of the currency.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["variant", "currency_code"], name="price_one_per_currency"),
            # Stripe charges three-decimal currencies by card only in multiples of 10 minor units.
            models.CheckConstraint(
                condition=~Q(currency_code__in=sorted(THREE_DECIMAL)) | Q(Exact(Mod("amount", 10), 0)),
                name="price_chargeable_three_decimal",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.variant_id} {self.amount} {self.currency_code}"

    def clean(self) -> None:
        if not _CURRENCY_RE.match(self.currency_code or ""):
            raise ValidationError({"currency_code": "Use a lower-case ISO 4217 code, e.g. usd."})
        _check_chargeable(amount=self.amount, currency_code=self.currency_code, field="amount")


class StockLevel(models.Model):
    """Stock of one variant. ``reserved`` is kept in step with active reservations."""

    variant = models.OneToOneField(Variant, on_delete=models.CASCADE, related_name="stock")
    on_hand = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(reserved__gte=0), name="stock_reserved_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.variant_id}: {self.on_hand} on hand, {self.reserved} reserved"


class StockReservation(models.Model):
    """A soft hold of ``quantity`` units of a variant for one cart until ``expires_at``."""

    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="reservations")
    cart_id = models.CharField(max_length=40, db_index=True)
    quantity = models.PositiveIntegerField()
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cart_id", "variant"], name="reservation_one_per_cart_variant")]


class ShippingOption(models.Model):
    id = PublicIdField(prefix="so")
    region = models.ForeignKey(Region, on_delete=models.CASCADE, related_name="shipping_options")
    name = models.CharField(max_length=100)
    amount = models.PositiveBigIntegerField(help_text="Minor units of the region's currency.")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["amount", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.region.currency_code})"

    def clean(self) -> None:
        if self.region_id is not None:
            _check_chargeable(amount=self.amount, currency_code=self.region.currency_code, field="amount")
