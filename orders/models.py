"""Orders: an immutable snapshot of a completed cart, three status machines and an audit trail.

Status fields change only through ``orders.services`` (transition tables in
``orders.transitions``); every change writes an append-only ``OrderEvent``. Payment
amounts are never stored here: they are sums over ``payments.LedgerEntry`` rows of the
order's PaymentIntent (``payments.ledger``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from carts.models import Cart
from catalog.models import Region
from common.actors import Actor
from common.ids import PublicIdField


class OrderStatus(models.TextChoices):
    PENDING = "pending"
    COMPLETED = "completed"
    CANCELED = "canceled"
    ARCHIVED = "archived"


class PaymentStatus(models.TextChoices):
    NOT_PAID = "not_paid"
    REQUIRES_ACTION = "requires_action"
    AUTHORIZED = "authorized"
    PARTIALLY_CAPTURED = "partially_captured"
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CANCELED = "canceled"


class FulfillmentStatus(models.TextChoices):
    NOT_FULFILLED = "not_fulfilled"
    FULFILLED = "fulfilled"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELED = "canceled"


class Order(models.Model):
    id = PublicIdField(prefix="order")
    display_id = models.PositiveIntegerField(unique=True, help_text="Human, sequential order number.")
    # One order per cart, enforced by the database: the last line of the exactly-once argument.
    cart = models.OneToOneField(Cart, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING, db_index=True)
    payment_status = models.CharField(
        max_length=24, choices=PaymentStatus.choices, default=PaymentStatus.NOT_PAID, db_index=True
    )
    fulfillment_status = models.CharField(
        max_length=16, choices=FulfillmentStatus.choices, default=FulfillmentStatus.NOT_FULFILLED, db_index=True
    )
    email = models.EmailField()
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    currency_code = models.CharField(max_length=3)
    tax_rate_bps = models.PositiveIntegerField()
    tax_inclusive = models.BooleanField()
    shipping_address = models.JSONField(null=True, blank=True)
    billing_address = models.JSONField(null=True, blank=True)
    shipping_option_id = models.CharField(max_length=40, blank=True)
    shipping_name = models.CharField(max_length=100, blank=True)
    subtotal = models.PositiveBigIntegerField()
    shipping_total = models.PositiveBigIntegerField()
    shipping_tax = models.PositiveBigIntegerField()
    tax_total = models.PositiveBigIntegerField()
    total = models.PositiveBigIntegerField()
    payment_intent_id = models.CharField(max_length=255, unique=True)
    capture_method = models.CharField(max_length=32, blank=True)
    authorized_at = models.DateTimeField(null=True, blank=True)
    capture_before = models.DateTimeField(null=True, blank=True, help_text="The authorization expires after this.")
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)
    # A worker's claim on sending the confirmation: a lease (orders.services.confirmation), so
    # a worker that died after claiming does not leave the email unsent for ever.
    confirmation_claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-display_id"]
        indexes = [models.Index(fields=["customer", "-created_at"], name="order_customer_recent")]
        constraints = [
            models.CheckConstraint(condition=Q(total__gte=0), name="order_total_non_negative"),
        ]
        # Staff money and fulfillment actions in the admin (issue 6: orders/admin.py).
        permissions = [
            ("capture_payment", "Can capture an order's payment"),
            ("refund_payment", "Can refund an order's payment"),
            ("cancel_payment", "Can cancel an order's payment authorization"),
            ("fulfil_order", "Can fulfil, ship and deliver an order"),
        ]

    def __str__(self) -> str:
        return f"#{self.display_id} ({self.id})"


class OrderLine(models.Model):
    """A snapshot of one cart line: what was bought, at what price and tax, at placement time."""

    id = PublicIdField(prefix="item")
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    variant_id = models.CharField(max_length=40, db_index=True)
    sku = models.CharField(max_length=64)
    title = models.CharField(max_length=400)
    quantity = models.PositiveIntegerField()
    unit_price = models.PositiveBigIntegerField()
    subtotal = models.PositiveBigIntegerField()
    tax_total = models.PositiveBigIntegerField()
    total = models.PositiveBigIntegerField()
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.CheckConstraint(condition=Q(quantity__gt=0), name="order_line_quantity_positive")]


class OrderEvent(models.Model):
    """Append-only audit trail of an order: placement, every status change, every money movement."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=64)
    actor = models.CharField(max_length=16, choices=Actor.choices)
    actor_user_id = models.CharField(max_length=40, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.type} by {self.actor}"


class OrderNotificationKind(models.TextChoices):
    """The emails a shopper gets after the confirmation (orders.services.notifications)."""

    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELED = "canceled"
    REFUNDED = "refunded"


class OrderNotification(models.Model):
    """One email owed to the shopper for one fact of the order: an outbox row.

    Written in the transaction that records the fact (so it exists exactly when the fact
    does); ``key`` is unique per (order, kind, object), so recording a fact twice (a webhook
    replayed, a task retried) owes one email. ``claimed_at`` is a sending worker's lease,
    ``sent_at`` is set once the email went out (orders.services.notifications).
    """

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16, choices=OrderNotificationKind.choices)
    key = models.CharField(max_length=255, unique=True)
    # What the email says, as known when the fact was recorded (carrier and tracking, amount refunded...).
    payload = models.JSONField(default=dict, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["created_at"], condition=Q(sent_at__isnull=True), name="order_notification_unsent")
        ]

    def __str__(self) -> str:
        return self.key


class OrderCounter(models.Model):
    """One row per sequence; ``display_id`` is allocated by an UPDATE ... RETURNING on it."""

    name = models.CharField(max_length=32, primary_key=True)
    value = models.PositiveBigIntegerField(default=0)


class CheckoutIncidentKind(models.TextChoices):
    INSUFFICIENT_INVENTORY = "insufficient_inventory"
    # A second paid PaymentIntent of a cart whose order another PaymentIntent pays.
    ORPHAN_PAYMENT = "orphan_payment"
    # The cart changed after its PaymentIntent was authorized (amount or currency differ).
    AMOUNT_MISMATCH = "amount_mismatch"


class CheckoutIncidentResolution(models.TextChoices):
    PAYMENT_CANCELED = "payment_canceled"  # authorization released
    PAYMENT_REFUNDED = "payment_refunded"  # automatic capture: money returned
    ACTION_FAILED = "action_failed"  # Stripe refused or was unreachable: staff must act
    NONE_NEEDED = "none_needed"


class CheckoutIncident(models.Model):
    """A paid PaymentIntent that no order holds (stock ran out after authorization, the cart
    changed after authorization, or a second payment of a cart that has its order): the money
    was released, or reconciliation retries releasing it (``action_failed``) and staff may."""

    kind = models.CharField(max_length=32, choices=CheckoutIncidentKind.choices)
    cart_id = models.CharField(max_length=40, db_index=True)
    payment_intent_id = models.CharField(max_length=255, db_index=True)
    variant_id = models.CharField(max_length=40, blank=True)
    amount = models.PositiveBigIntegerField()
    currency_code = models.CharField(max_length=3)
    resolution = models.CharField(max_length=32, choices=CheckoutIncidentResolution.choices)
    detail = models.CharField(max_length=500, blank=True)
    actor = models.CharField(max_length=16, choices=Actor.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.cart_id} ({self.resolution})"
