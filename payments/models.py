from __future__ import annotations

from django.db import models
from django.db.models import Q

from common.actors import Actor
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
    stripe_customer_id = models.CharField(max_length=255, blank=True, help_text="Set when a card is saved or reused.")
    save_payment_method = models.BooleanField(
        default=False, help_text="The shopper asked to keep the card on their Stripe Customer."
    )
    confirm_attempts = models.PositiveIntegerField(
        default=0, help_text="Server-side confirmations with a saved card; part of their idempotency keys."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["cart_id"], condition=Q(is_active=True), name="payment_session_one_active_per_cart"
            )
        ]

    def __str__(self) -> str:
        return self.id


# --- Payment attempts -------------------------------------------------------------------


class PaymentAttemptStage(models.TextChoices):
    ATTACH = "attach"  # the card is attached to a Stripe Customer (card token), before any PaymentIntent confirm
    CONFIRM = "confirm"  # the PaymentIntent is confirmed (server-side, or by Stripe.js in the browser)


class PaymentAttemptOutcome(models.TextChoices):
    SUCCEEDED = "succeeded"  # authorized (manual capture) or charged (automatic capture)
    DECLINED = "declined"  # the card was refused (also a failed 3-D Secure authentication)
    REQUIRES_ACTION = "requires_action"  # 3-D Secure asked for; no outcome yet
    ERROR = "error"  # Stripe refused the request for another definite reason (never an unknown outcome)


class PaymentAttempt(models.Model):
    """One outcome of a shopper's try to pay: an append-only fact, never edited or deleted.

    Written by ``payments.services.attempts`` where the outcome becomes known (a card refused
    on attach, a decline or an authorization of a PaymentIntent, whoever reports it first:
    the payment-session call, ``complete``, a webhook, the reconciliation sweep).
    ``idempotency_key`` is unique (``attempt_key_*``): the same fact reported twice (a webhook
    replayed, the storefront and Stripe both telling us) is one row. A declined session that
    is retried and replaced keeps its declined row; the dashboard's success rate counts these.
    """

    cart_id = models.CharField(max_length=40, db_index=True)
    payment_session = models.ForeignKey(
        PaymentSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="attempts"
    )
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    stage = models.CharField(max_length=16, choices=PaymentAttemptStage.choices)
    outcome = models.CharField(max_length=16, choices=PaymentAttemptOutcome.choices)
    decline_code = models.CharField(
        max_length=64, blank=True, help_text="Stripe's decline_code, else its error code (declines and errors)."
    )
    amount = models.PositiveBigIntegerField()
    currency_code = models.CharField(max_length=3)
    idempotency_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return (
            f"{self.stage} {self.outcome} {self.amount} {self.currency_code} ({self.payment_intent_id or self.cart_id})"
        )


# --- Ledger -----------------------------------------------------------------------------


class LedgerEntryKind(models.TextChoices):
    AUTHORIZATION = "authorization"  # funds held (manual capture) or charged (automatic capture)
    CAPTURE = "capture"  # funds taken
    VOID = "void"  # authorization released (cancel, expiry, or the uncaptured rest of a partial capture)
    REFUND = "refund"
    DISPUTE = "dispute"  # funds withdrawn by a dispute (chargeback)
    DISPUTE_REVERSAL = "dispute_reversal"  # funds reinstated when the dispute was won


class RefundReason(models.TextChoices):
    """The reasons Stripe takes on a refund (``reason``; ``fraudulent`` also informs Radar)."""

    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"


class LedgerEntryStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class LedgerEntry(models.Model):
    """An append-only money movement of one PaymentIntent.

    Authorized / captured / refunded amounts are sums over these rows, never fields edited
    in place. ``idempotency_key`` is unique: recording the same Stripe fact twice (a webhook
    retried, a double-submitted admin form) inserts nothing the second time. A Stripe object
    is recorded once per kind (``stripe_object_id`` is unique per ``kind`` when set). Only
    ``status`` changes afterwards: an operation in flight (``pending``) settles once Stripe's
    outcome is known, and a refund may move as Stripe reports it (succeeded -> failed).
    """

    payment_intent_id = models.CharField(max_length=255, db_index=True)
    order_id = models.CharField(max_length=40, blank=True, db_index=True)
    kind = models.CharField(max_length=16, choices=LedgerEntryKind.choices)
    status = models.CharField(max_length=16, choices=LedgerEntryStatus.choices, default=LedgerEntryStatus.SUCCEEDED)
    amount = models.PositiveBigIntegerField()
    currency_code = models.CharField(max_length=3)
    idempotency_key = models.CharField(max_length=255, unique=True)
    stripe_object_id = models.CharField(max_length=255, blank=True, db_index=True, help_text="Charge or refund id.")
    actor = models.CharField(max_length=16, choices=Actor.choices, default=Actor.SYSTEM)
    actor_user_id = models.CharField(max_length=40, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    refund_reason = models.CharField(
        max_length=32, choices=RefundReason.choices, blank=True, help_text="The reason sent to Stripe (refunds)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "stripe_object_id"],
                condition=~Q(stripe_object_id=""),
                name="ledger_entry_one_row_per_stripe_object",
            )
        ]
        indexes = [
            models.Index(fields=["status", "updated_at"], condition=Q(status="pending"), name="ledger_entry_pending")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency_code} ({self.payment_intent_id})"


# --- Disputes ---------------------------------------------------------------------------


class Dispute(models.Model):
    """A Stripe dispute (chargeback) on a charge of one of our PaymentIntents."""

    OPEN_STATUSES = ("warning_needs_response", "warning_under_review", "needs_response", "under_review")

    stripe_dispute_id = models.CharField(max_length=255, unique=True)
    payment_intent_id = models.CharField(max_length=255, db_index=True)
    charge_id = models.CharField(max_length=255, blank=True)
    order_id = models.CharField(max_length=40, blank=True, db_index=True)
    amount = models.PositiveBigIntegerField()
    currency_code = models.CharField(max_length=3)
    reason = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=32)
    is_open = models.BooleanField(default=True, db_index=True)
    evidence_due_by = models.DateTimeField(null=True, blank=True)
    funds_withdrawn = models.BooleanField(default=False)
    funds_reinstated = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.stripe_dispute_id} ({self.status})"


class StripeCustomer(models.Model):
    """The one Stripe Customer of one of our customers, created lazily."""

    user_id = models.CharField(max_length=40, unique=True)
    stripe_customer_id = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
