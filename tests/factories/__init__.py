"""factory-boy factories for every model the tests build."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from carts.models import Cart, LineItem
from catalog.models import Category, Price, Product, Region, ShippingOption, StockLevel, Variant
from customers.models import User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"shopper{n}@example.com")
    first_name = "Ada"
    last_name = "Lovelace"
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            obj.save()


class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Region

    name = factory.Sequence(lambda n: f"Region {n}")
    currency_code = "usd"
    countries = factory.LazyFunction(lambda: ["US"])
    tax_rate_bps = 875
    tax_inclusive = False


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category

    handle = factory.Sequence(lambda n: f"category-{n}")
    name = factory.Sequence(lambda n: f"Category {n}")
    position = 0


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    title = factory.Sequence(lambda n: f"Fabric {n}")
    handle = factory.Sequence(lambda n: f"fabric-{n}")
    description = "Sold per metre."


class VariantFactory(factory.django.DjangoModelFactory):
    """A variant with stock (``stock``, default 100) and prices (``prices``, default usd 1000)."""

    class Meta:
        model = Variant
        skip_postgeneration_save = True

    product = factory.SubFactory(ProductFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    title = "Default"
    manage_inventory = True
    allow_backorder = False

    @factory.post_generation
    def stock(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            StockLevel.objects.create(variant=obj, on_hand=100 if extracted is None else extracted)

    @factory.post_generation
    def prices(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            for currency, amount in (extracted or {"usd": 1000}).items():
                Price.objects.create(variant=obj, currency_code=currency, amount=amount)


class ShippingOptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ShippingOption

    region = factory.SubFactory(RegionFactory)
    name = "Standard"
    amount = 500


class CartFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cart

    region = factory.SubFactory(RegionFactory)
    currency_code = factory.LazyAttribute(lambda o: o.region.currency_code)
    email = "guest@example.com"
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))


class LineItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LineItem

    cart = factory.SubFactory(CartFactory)
    variant = factory.SubFactory(VariantFactory)
    sku = factory.LazyAttribute(lambda o: o.variant.sku)
    title = factory.LazyAttribute(lambda o: o.variant.title)
    quantity = 1
    unit_price = 1000
