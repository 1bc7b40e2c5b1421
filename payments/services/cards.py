"""Stripe Customers and saved cards (PaymentMethods on the customer's Stripe Customer).

Stripe calls: never inside a database transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from common.errors import NotFound
from payments import gateway
from payments.models import PaymentSession, StripeCustomer
from payments.services.common import customer_of, idempotency_key, intent_payment_method
from payments.services.mirror import stripe_object_mirror_later

logger = logging.getLogger(__name__)


# --- Stripe Customers -------------------------------------------------------------------


def stripe_customer_get_or_create(*, user_id: str) -> str:
    """The Stripe Customer id of one of our customers, created on first use.

    Two concurrent first calls both ask Stripe with the same idempotency key (real Stripe
    returns one Customer); the unique ``user_id`` keeps exactly one row either way.
    """
    existing = StripeCustomer.objects.filter(user_id=user_id).values_list("stripe_customer_id", flat=True).first()
    if existing:
        return existing
    user = get_user_model().objects.filter(pk=user_id).only("email").first()
    if user is None:
        raise NotFound("No such customer.")
    customer = gateway.customer_create(
        email=user.email,
        metadata={"customer_id": user_id},
        idempotency_key=idempotency_key("customer", user_id, "create"),
    )
    try:
        with transaction.atomic():
            StripeCustomer.objects.create(user_id=user_id, stripe_customer_id=customer["id"])
    except IntegrityError:
        # A concurrent request stored its Customer first; ours (localstripe ignores keys) stays unused.
        return StripeCustomer.objects.values_list("stripe_customer_id", flat=True).get(user_id=user_id)
    logger.info("stripe_customer.created user_id=%s stripe_customer_id=%s", user_id, customer["id"])
    stripe_object_mirror_later(obj=customer)
    return customer["id"]


def stripe_customer_id_for(*, user_id: str | None) -> str | None:
    if not user_id:
        return None
    return StripeCustomer.objects.filter(user_id=user_id).values_list("stripe_customer_id", flat=True).first()


def guest_customer_id_for_cart(*, cart_id: str) -> str | None:
    """The Stripe Customer made for a guest cart's card (see ``card_token_attach``), if any."""
    sessions = PaymentSession.objects.filter(cart_id=cart_id, customer_id="").exclude(stripe_customer_id="")
    return sessions.order_by("-created_at").values_list("stripe_customer_id", flat=True).first()


def card_token_attach(*, token: str, cart_id: str, email: str, user_id: str | None) -> tuple[str, str]:
    """Attach a Stripe.js card token to a Stripe Customer; returns (customer id, card id).

    The Customer is the signed-in customer's own (the card then stays on it), else one per
    guest cart: created on the first token, kept on the cart's payment sessions, reused for
    the next card tried on that cart. The card id (``card_...``) is then set on the cart's
    PaymentIntent and confirmed like a saved card. Raises ``PaymentError`` ``card_declined``
    when the card is refused on attach. Calls Stripe: never inside a transaction.
    """
    if user_id:
        customer_id = stripe_customer_get_or_create(user_id=user_id)
    else:
        customer_id = guest_customer_id_for_cart(cart_id=cart_id) or ""
        if not customer_id:
            params: dict[str, Any] = {"email": email, "metadata": {"cart_id": cart_id}}
            customer = gateway.customer_create(
                email=email,
                metadata={"cart_id": cart_id},
                idempotency_key=idempotency_key("cart", cart_id, "customer", "create", params=params),
            )
            customer_id = customer["id"]
            logger.info("stripe_customer.created cart_id=%s stripe_customer_id=%s", cart_id, customer_id)
            stripe_object_mirror_later(obj=customer)
    card = gateway.customer_source_create(
        customer=customer_id, source=token, idempotency_key=idempotency_key("customer", customer_id, "source", token)
    )
    logger.info("card.attached cart_id=%s stripe_customer_id=%s card_id=%s", cart_id, customer_id, card["id"])
    return customer_id, card["id"]


# --- Saved cards ------------------------------------------------------------------------


def saved_payment_method_get(*, user_id: str | None, payment_method_id: str, param: str) -> dict[str, Any]:
    """The PaymentMethod if it is saved on this user's Stripe Customer; 404 otherwise."""
    stripe_customer_id = stripe_customer_id_for(user_id=user_id)
    not_found = NotFound("No such payment method.", param=param)
    if not stripe_customer_id or not payment_method_id.startswith("pm_"):
        raise not_found
    try:
        method = gateway.payment_method_retrieve(id=payment_method_id)
    except NotFound:
        raise not_found from None
    if customer_of(method) != stripe_customer_id:
        raise not_found
    return method


def payment_method_detach(*, user_id: str, payment_method_id: str) -> dict[str, Any]:
    """Remove a saved card from the user's Stripe Customer (404 unless it is theirs)."""
    saved_payment_method_get(user_id=user_id, payment_method_id=payment_method_id, param="id")
    method = gateway.payment_method_detach(
        id=payment_method_id, idempotency_key=idempotency_key("pm", payment_method_id, "detach", user_id)
    )
    logger.info("payment_method.detached user_id=%s payment_method_id=%s", user_id, payment_method_id)
    stripe_object_mirror_later(obj=method)
    return method


def payment_method_save_from_intent(*, payment_intent_id: str) -> bool:
    """Attach the card of an authorized intent to the shopper's Customer, where Stripe did not.

    On real Stripe ``setup_future_usage`` makes Stripe attach the card when the payment
    succeeds, and this does nothing. localstripe rejects ``setup_future_usage``
    (``STRIPE_SEND_SETUP_FUTURE_USAGE = False``), so the card is attached here, after the
    authorization. Runs as a task (``payments.tasks.payment_method_save``), outside any
    transaction. Returns whether a card was attached.
    """
    if settings.STRIPE_SEND_SETUP_FUTURE_USAGE:
        return False
    session = PaymentSession.objects.filter(payment_intent_id=payment_intent_id).first()
    if session is None or not session.save_payment_method or not session.stripe_customer_id:
        return False
    intent = gateway.payment_intent_retrieve(id=payment_intent_id)
    method_id = intent_payment_method(intent)
    if intent.get("status") not in ("requires_capture", "succeeded") or not method_id:
        return False
    method = gateway.payment_method_retrieve(id=method_id)
    if customer_of(method) == session.stripe_customer_id:
        return False
    if customer_of(method):  # on another Customer: never move someone's card
        logger.warning("payment_method.save_skipped payment_intent_id=%s reason=other_customer", payment_intent_id)
        return False
    method = gateway.payment_method_attach(
        id=method_id,
        customer=session.stripe_customer_id,
        idempotency_key=idempotency_key("pm", method_id, "attach", session.stripe_customer_id),
    )
    logger.info("payment_method.saved payment_intent_id=%s payment_method_id=%s", payment_intent_id, method_id)
    gateway.mirror(method)  # already in a task (payments.tasks.payment_method_save)
    return True
