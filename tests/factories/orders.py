"""Factories for payments' PaymentSession and for orders (OrderFactory builds a placed-looking order)."""

from __future__ import annotations

import factory

from orders.models import FulfillmentStatus, Order, OrderLine, OrderStatus, PaymentStatus
from payments.models import PaymentSession, PaymentSessionStatus
from tests.factories import CartFactory, RegionFactory


class PaymentSessionFactory(factory.django.DjangoModelFactory):
    """The active session of a cart whose PaymentIntent was created directly through the gateway."""

    class Meta:
        model = PaymentSession

    cart_id = factory.Sequence(lambda n: f"cart_test{n}")
    provider_id = "stripe"
    payment_intent_id = factory.Sequence(lambda n: f"pi_test{n}")
    client_secret = factory.LazyAttribute(lambda o: f"{o.payment_intent_id}_secret_test")
    status = PaymentSessionStatus.AUTHORIZED
    amount = 1000
    currency_code = "usd"
    cart_version = 1
    is_active = True


class OrderFactory(factory.django.DjangoModelFactory):
    """An order row without going through placement (for API/selector tests)."""

    class Meta:
        model = Order

    display_id = factory.Sequence(lambda n: 100_000 + n)
    cart = factory.SubFactory(CartFactory)
    status = OrderStatus.PENDING
    payment_status = PaymentStatus.AUTHORIZED
    fulfillment_status = FulfillmentStatus.NOT_FULFILLED
    email = "guest@example.com"
    customer = None
    region = factory.LazyAttribute(lambda o: o.cart.region if o.cart else RegionFactory())
    currency_code = factory.LazyAttribute(lambda o: o.region.currency_code)
    tax_rate_bps = factory.LazyAttribute(lambda o: o.region.tax_rate_bps)
    tax_inclusive = factory.LazyAttribute(lambda o: o.region.tax_inclusive)
    subtotal = 1000
    shipping_total = 0
    shipping_tax = 0
    tax_total = 88
    total = 1088
    payment_intent_id = factory.Sequence(lambda n: f"pi_order{n}")
    capture_method = "manual"


class OrderLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    variant_id = factory.Sequence(lambda n: f"variant_test{n}")
    sku = factory.Sequence(lambda n: f"SKU-T{n}")
    title = "Linen / Natural"
    quantity = 1
    unit_price = 1000
    subtotal = 1000
    tax_total = 88
    total = 1088
