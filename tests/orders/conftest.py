"""Paid carts for the order tests: a real cart, a real PaymentIntent in localstripe, our session row.

The PaymentIntent is created straight through ``payments.gateway`` (what the payment-session
endpoint does) and confirmed with a test card (what Stripe.js does in the browser), so these
tests depend on the gateway only, not on the payment-session endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings

from carts import selectors as cart_selectors
from carts import services as cart_services
from catalog import services as catalog_services
from payments import gateway
from payments.models import PaymentSessionStatus
from tests.factories import RegionFactory, ShippingOptionFactory, UserFactory, VariantFactory
from tests.factories.orders import PaymentSessionFactory
from tests.helpers import ADDRESSES, VISA, bearer, token_for
from tests.plugins.localstripe import localstripe, localstripe_server  # noqa: F401 - fixtures


@dataclass
class PaidCart:
    cart_id: str
    payment_intent_id: str
    client_secret: str
    total: int
    currency_code: str
    user_id: str | None


@dataclass
class Shop:
    region: Any
    shipping_option: Any

    def variant(self, *, stock: int = 100, price: int | None = None, **kwargs: Any) -> Any:
        amount = (
            price if price is not None else {"usd": 1450, "jpy": 1200, "kwd": 1250}.get(self.region.currency_code, 1000)
        )
        return VariantFactory(stock=stock, prices={self.region.currency_code: amount}, **kwargs)


def shop_for(currency: str = "usd") -> Shop:
    region = {
        "usd": lambda: RegionFactory(name="United States", currency_code="usd", countries=["US"], tax_rate_bps=875),
        "jpy": lambda: RegionFactory(
            name="Japan", currency_code="jpy", countries=["JP"], tax_rate_bps=1000, tax_inclusive=True
        ),
        "kwd": lambda: RegionFactory(name="Kuwait", currency_code="kwd", countries=["KW"], tax_rate_bps=500),
    }[currency]()
    shipping = {"usd": 500, "jpy": 800, "kwd": 750}[currency]
    return Shop(region=region, shipping_option=ShippingOptionFactory(region=region, amount=shipping))


@pytest.fixture
def shop(db: Any) -> Shop:
    return shop_for("usd")


def make_cart(
    shop: Shop,
    items: list[tuple[Any, int]],
    *,
    user_id: str | None = None,
    email: str = "guest@example.com",
) -> str:
    cart = cart_services.cart_create(
        region_id=shop.region.id,
        email=email,
        items=[{"variant_id": variant.id, "quantity": quantity} for variant, quantity in items],
        customer_id=user_id,
    )
    country = shop.region.countries[0]
    cart_services.cart_update(cart_id=cart.id, user_id=user_id, shipping_address=ADDRESSES[country])
    cart_services.cart_shipping_method_set(cart_id=cart.id, user_id=user_id, option_id=shop.shipping_option.id)
    return cart.id


def pay_cart(
    localstripe: Any,  # noqa: F811
    cart_id: str,
    *,
    capture_method: str = "manual",
    card: str = VISA,
    reserve: bool = True,
    amount: int | None = None,
) -> PaidCart:
    """Reserve the stock, create + confirm the cart's PaymentIntent in localstripe, record our session."""
    cart = _cart(cart_id)
    totals = cart_selectors.cart_totals(cart=cart)
    if reserve:
        quantities = {item.variant_id: item.quantity for item in cart.items.all()}
        catalog_services.stock_reserve(cart_id=cart_id, quantities=quantities, ttl=settings.RESERVATION_TTL)
    payment_method = localstripe.card_payment_method(card)
    intent = gateway.payment_intent_create(
        amount=amount if amount is not None else totals.total,
        currency=cart.currency_code,
        metadata={"cart_id": cart_id, "region_id": cart.region_id},
        capture_method=capture_method,  # type: ignore[arg-type]
        payment_method=payment_method,
        automatic_payment_methods=False,
        confirm=True,
        idempotency_key=f"test:{cart_id}:pi",
    )
    PaymentSessionFactory(
        cart_id=cart_id,
        payment_intent_id=intent["id"],
        client_secret=intent["client_secret"],
        amount=int(intent["amount"]),
        currency_code=cart.currency_code,
        cart_version=cart.version,
        status={
            "requires_capture": PaymentSessionStatus.AUTHORIZED,
            "succeeded": PaymentSessionStatus.SUCCEEDED,
            "requires_action": PaymentSessionStatus.REQUIRES_ACTION,
        }.get(intent["status"], PaymentSessionStatus.PENDING),
        customer_id=cart.customer_id or "",
    )
    return PaidCart(
        cart_id=cart_id,
        payment_intent_id=intent["id"],
        client_secret=intent["client_secret"],
        total=totals.total,
        currency_code=cart.currency_code,
        user_id=cart.customer_id,
    )


def _cart(cart_id: str) -> Any:
    return cart_selectors.cart_queryset().get(pk=cart_id)


@pytest.fixture
def paid_cart(localstripe: Any, shop: Shop) -> PaidCart:  # noqa: F811
    variant = shop.variant(stock=10)
    return pay_cart(localstripe, make_cart(shop, [(variant, 2)]))


def complete(client: Any, cart_id: str, payment_intent_id: str, token: str | None = None) -> Any:
    return client.post(
        f"/store/carts/{cart_id}/complete", {"payment_intent_id": payment_intent_id}, format="json", **bearer(token)
    )


@pytest.fixture
def customer_token(db: Any) -> tuple[Any, str]:
    user = UserFactory()
    return user, token_for(user)
