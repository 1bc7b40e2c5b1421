"""The payment-session orchestrator: cart checks and stock hold, then Stripe.

``cart_payment_session_create`` runs in two steps (docs/payments.md):

1. one short transaction: lock the cart row, check it is writable and payable, compute the
   amount on the server and reserve its stock for ``RESERVATION_TTL`` (stock rows locked in
   primary-key order after the cart row);
2. outside any transaction: ``payments.services.payment_session_upsert`` creates or updates
   the cart's one PaymentIntent. If that fails, the stock hold is released, and no row is
   left that would block a retry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import prefetch_related_objects

from carts import selectors
from carts.models import Cart, LineItem
from carts.services import cart_assert_writable, cart_lock
from catalog import services as catalog_services
from common.errors import ApplicationError, ServiceUnavailable, ValidationError
from payments import services as payment_services
from payments.services import PaymentSessionResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _PayableCart:
    cart_id: str
    version: int
    amount: int
    currency_code: str
    region_id: str
    email: str
    customer_id: str | None


def checkout_assert_enabled() -> None:
    """The checkout kill switch (``CHECKOUT_ENABLED``): 503 checkout_disabled when off."""
    if not settings.CHECKOUT_ENABLED:
        raise ServiceUnavailable("Checkout is temporarily disabled. Please try again later.", code="checkout_disabled")


def cart_assert_payable(*, cart: Cart, items: list[LineItem]) -> None:
    """Items, email, shipping address and shipping method are required to pay (400 otherwise)."""
    if not items:
        raise ValidationError("This cart has no items.", code="cart_empty")
    if not cart.email:
        raise ValidationError("Add an email address to this cart first.", code="missing_email", param="email")
    if not cart.shipping_address:
        raise ValidationError(
            "Add a shipping address to this cart first.", code="missing_shipping_address", param="shipping_address"
        )
    if cart.shipping_option_id is None:
        raise ValidationError(
            "Choose a shipping method for this cart first.", code="missing_shipping_method", param="shipping_method"
        )


def _cart_reserve_for_payment(*, cart_id: str, user_id: str | None) -> _PayableCart:
    with transaction.atomic():
        cart = cart_lock(cart_id=cart_id)
        selectors.cart_check_visible(cart=cart, user_id=user_id)
        cart_assert_writable(cart=cart)
        prefetch_related_objects([cart], "items")
        items = list(cart.items.all())
        cart_assert_payable(cart=cart, items=items)
        totals = selectors.cart_totals(cart=cart)
        quantities: dict[str, int] = {}
        for item in items:
            quantities[item.variant_id] = quantities.get(item.variant_id, 0) + item.quantity
        catalog_services.stock_reserve(cart_id=cart.id, quantities=quantities, ttl=settings.RESERVATION_TTL)
        return _PayableCart(
            cart_id=cart.id,
            version=cart.version,
            amount=totals.total,
            currency_code=cart.currency_code,
            region_id=cart.region_id,
            email=cart.email,
            customer_id=cart.customer_id,
        )


def cart_payment_session_create(
    *,
    cart_id: str,
    user_id: str | None,
    save_payment_method: bool = False,
    payment_method_id: str | None = None,
    card_token: str | None = None,
) -> PaymentSessionResult:
    """Create or refresh the cart's payment session (one PaymentIntent per cart).

    Raises 400 (not payable), 404, 409 ``insufficient_inventory``/``cart_completing``, 410
    ``cart_expired``, 402 (saved or tokenized card declined), 502/503 ``payment_provider_unavailable``,
    503 ``checkout_disabled``.
    """
    checkout_assert_enabled()
    payment_services.payment_session_request_check(
        user_id=user_id,
        save_payment_method=save_payment_method,
        payment_method_id=payment_method_id,
        card_token=card_token,
    )
    payable = _cart_reserve_for_payment(cart_id=cart_id, user_id=user_id)
    try:
        result = payment_services.payment_session_upsert(
            cart_id=payable.cart_id,
            cart_version=payable.version,
            amount=payable.amount,
            currency_code=payable.currency_code,
            region_id=payable.region_id,
            email=payable.email,
            customer_id=payable.customer_id,
            user_id=user_id,
            save_payment_method=save_payment_method,
            payment_method_id=payment_method_id,
            card_token=card_token,
            request_checked=True,
        )
    except ApplicationError as exc:
        if payment_services.payment_session_error_releases_stock(exc):
            catalog_services.stock_release(cart_id=payable.cart_id)
        logger.info("payment_session.failed cart_id=%s code=%s", cart_id, exc.code)
        raise
    logger.info(
        "payment_session.ready cart_id=%s payment_session_id=%s status=%s amount=%s",
        cart_id,
        result.session.id,
        result.session.status,
        result.session.amount,
    )
    return result
