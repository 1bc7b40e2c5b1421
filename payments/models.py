from __future__ import annotations

from django.db import models
from django.db.models import Q

from common.ids import PublicIdField


class PaymentSessionStatus(models.TextChoices):
    PENDING = "pending"  # PaymentIntent created, waiting for the shopper to confirm
    REQUIRES_ACTION = "requires_action"  # 3-D Secure or similar
    AUTHORIZED = "authorized"  # requires_capture (manual capture)
    SUCCEEDED = "succeeded"  # captured (automatic capture)
    FAILED = "failed"
    CANCELED = "canceled"


class PaymentSession(models.Model):
    """Our record of the one Stripe PaymentIntent of a cart.

    Stripe ids are plain text (no foreign keys into dj-stripe tables). ``cart_id`` is a
    plain id too: payments does not import carts. At most one session per cart is active;
    a replaced session (its PaymentIntent could no longer be updated) is kept, inactive.
    """

    id = PublicIdField(prefix="ps")
    cart_id = models.CharField(max_length=40, db_index=True)
    provider_id = models.CharField(max_length=32, default="stripe")
    payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    client_secret = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=32, choices=PaymentSessionStatus.choices, default=PaymentSessionStatus.PENDING)
    amount = models.PositiveBigIntegerField()
    currency_code = models.CharField(max_length=3)
    cart_version = models.PositiveIntegerField(help_text="The cart version the amount was computed for.")
    customer_id = models.CharField(max_length=40, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cart_id"], condition=Q(is_active=True), name="payment_session_one_active_per_cart")
        ]

    def __str__(self) -> str:
        return self.id
