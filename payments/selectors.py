from __future__ import annotations

from typing import Any

from payments import gateway
from payments.models import PaymentSession, StripeCustomer
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
