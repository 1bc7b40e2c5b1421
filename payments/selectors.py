from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db.models import Count, Exists, OuterRef
from django.db.models.functions import TruncDate

from payments import gateway
from payments.models import PaymentAttempt, PaymentAttemptOutcome, PaymentSession, StripeCustomer
from payments.services.common import id_of


def payment_session_active_for_cart(*, cart_id: str) -> PaymentSession | None:
    return PaymentSession.objects.filter(cart_id=cart_id, is_active=True).first()


def payment_session_get_by_intent(*, payment_intent_id: str) -> PaymentSession | None:
    return PaymentSession.objects.filter(payment_intent_id=payment_intent_id).first()


def payment_intent_id_of(*, stripe_object: dict[str, Any]) -> str:
    """The PaymentIntent of a Stripe payment_intent, charge, refund or dispute object ("" for none).

    Reads the charge from Stripe when the object names only the charge: call outside transactions.
    """
    if stripe_object.get("object") == "payment_intent":
        return id_of(stripe_object.get("id"))
    found = id_of(stripe_object.get("payment_intent"))
    if found:
        return found
    charge = stripe_object.get("charge")
    if isinstance(charge, dict) and charge.get("payment_intent"):
        return id_of(charge["payment_intent"])
    charge_id = id_of(charge)
    if not charge_id:
        return ""
    return id_of(gateway.charge_retrieve(id=charge_id).get("payment_intent"))


def stripe_customer_id_for_user(*, user_id: str) -> str | None:
    return StripeCustomer.objects.filter(user_id=user_id).values_list("stripe_customer_id", flat=True).first()


def payment_method_list_for_user(*, user_id: str) -> list[dict[str, Any]]:
    """The user's saved cards as ``{id, brand, last4, exp_month, exp_year}`` (reads Stripe).

    A user without a Stripe Customer has none, and no Stripe call is made.
    """
    stripe_customer_id = stripe_customer_id_for_user(user_id=user_id)
    if not stripe_customer_id:
        return []
    methods = gateway.payment_method_list(customer=stripe_customer_id)
    return [
        {
            "id": method["id"],
            "brand": (method.get("card") or {}).get("brand", ""),
            "last4": (method.get("card") or {}).get("last4", ""),
            "exp_month": (method.get("card") or {}).get("exp_month"),
            "exp_year": (method.get("card") or {}).get("exp_year"),
        }
        for method in methods
        if method.get("type") == "card"
    ]


# --- Payment attempts (for reports: the admin dashboard) -----------------------------------


@dataclass(frozen=True)
class PaymentAttemptCount:
    """How many attempt rows share a day (UTC, ``created_at``), stage, outcome and decline code.

    ``settled``: for ``requires_action`` rows, whether the same PaymentIntent later recorded a
    success or a decline (else the 3-D Secure step is still open or was abandoned); always
    True for the other outcomes.
    """

    day: date
    stage: str
    outcome: str
    decline_code: str
    settled: bool
    count: int


def payment_attempt_counts(*, start: datetime, end: datetime) -> list[PaymentAttemptCount]:
    """Attempt rows recorded in ``[start, end)``, grouped (one query); see ``PaymentAttemptCount``."""
    settled = Exists(
        PaymentAttempt.objects.filter(
            payment_intent_id=OuterRef("payment_intent_id"),
            outcome__in=[PaymentAttemptOutcome.SUCCEEDED, PaymentAttemptOutcome.DECLINED],
        ).exclude(payment_intent_id="")
    )
    rows = (
        PaymentAttempt.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(day=TruncDate("created_at"), settled=settled)
        .values("day", "stage", "outcome", "decline_code", "settled")
        .annotate(count=Count("pk"))
        .order_by("day", "stage", "outcome", "decline_code", "settled")
    )
    return [
        PaymentAttemptCount(
            **{**row, "settled": row["settled"] or row["outcome"] != PaymentAttemptOutcome.REQUIRES_ACTION}
        )
        for row in rows
    ]
