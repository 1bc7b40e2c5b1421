from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from catalog.models import Region, ShippingOption, Variant
from common.ids import PublicIdField


class CartStatus(models.TextChoices):
    ACTIVE = "active"
    COMPLETING = "completing"
    COMPLETED = "completed"
    EXPIRED = "expired"


class Cart(models.Model):
    id = PublicIdField(prefix="cart")
    status = models.CharField(max_length=16, choices=CartStatus.choices, default=CartStatus.ACTIVE, db_index=True)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    currency_code = models.CharField(max_length=3)
    email = models.EmailField(blank=True)
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="carts"
    )
    shipping_address = models.JSONField(null=True, blank=True)
    billing_address = models.JSONField(null=True, blank=True)
    shipping_option = models.ForeignKey(
        ShippingOption, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    shipping_name = models.CharField(max_length=100, blank=True)
    shipping_amount = models.PositiveBigIntegerField(null=True, blank=True)
    # Bumped on every change of what the shopper would pay; part of Stripe idempotency keys.
    version = models.PositiveIntegerField(default=1)
    expires_at = models.DateTimeField(db_index=True)
    completing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "expires_at"], name="cart_status_expiry")]

    def __str__(self) -> str:
        return self.id


class LineItem(models.Model):
    id = PublicIdField(prefix="item")
    cart = models.ForeignKey(Cart, on_delete=models.CASCADE, related_name="items")
    variant = models.ForeignKey(Variant, on_delete=models.PROTECT, related_name="+")
    sku = models.CharField(max_length=64)
    title = models.CharField(max_length=400)
    quantity = models.PositiveIntegerField()
    unit_price = models.PositiveBigIntegerField(help_text="Minor units of the cart's currency, set by the server.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["cart", "variant"], name="line_item_one_per_variant"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="line_item_quantity_positive"),
        ]
