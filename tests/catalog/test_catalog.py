"""Catalog: read endpoints, the three-decimal pricing rule, the demo catalog command."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.models import Price, Product, Region, ShippingOption, StockLevel, StockReservation, Variant
from common.money import is_chargeable
from tests.factories import ProductFactory, RegionFactory, VariantFactory
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def test_regions_list(api_client, region_usd, region_jpy):
    response = api_client.get("/store/regions")
    assert response.status_code == 200
    regions = {r["name"]: r for r in response.json()["regions"]}
    assert regions["Japan"] == {
        "id": region_jpy.id,
        "name": "Japan",
        "currency_code": "jpy",
        "countries": ["JP"],
        "tax_rate_bps": 1000,
        "tax_inclusive": True,
    }
    assert regions["United States"]["id"].startswith("reg_")


def test_products_list_prices_in_region_currency(api_client, region_jpy):
    product = ProductFactory(title="Washed Linen", handle="washed-linen")
    priced = VariantFactory(product=product, sku="LIN-NAT", title="Natural", prices={"usd": 2800, "jpy": 4200}, stock=5)
    unpriced = VariantFactory(product=product, sku="LIN-SGE", title="Sage", prices={"usd": 2800}, stock=0)
    response = api_client.get("/store/products", {"region_id": region_jpy.id})
    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (1, None, None)
    assert body["products"][0] == {
        "id": product.id,
        "title": "Washed Linen",
        "handle": "washed-linen",
        "description": "Sold per metre.",
        "category": None,
        "thumbnail": None,
        "variants": [
            {
                "id": priced.id,
                "sku": "LIN-NAT",
                "title": "Natural",
                "price": {"amount": 4200, "currency_code": "jpy"},
                "in_stock": True,
            },
            {"id": unpriced.id, "sku": "LIN-SGE", "title": "Sage", "price": None, "in_stock": False},
        ],
    }


def test_products_list_without_region_has_no_prices(api_client):
    VariantFactory()
    variant = api_client.get("/store/products").json()["products"][0]["variants"][0]
    assert variant["price"] is None


def test_products_in_stock_flags(api_client, region_usd):
    product = ProductFactory()
    VariantFactory(product=product, sku="A-OUT", stock=0)
    VariantFactory(product=product, sku="B-BACKORDER", stock=0, allow_backorder=True)
    VariantFactory(product=product, sku="C-UNTRACKED", stock=0, manage_inventory=False)
    held = VariantFactory(product=product, sku="D-HELD", stock=2)
    released = VariantFactory(product=product, sku="E-HOLD-EXPIRED", stock=2)
    now = timezone.now()
    StockReservation.objects.create(variant=held, cart_id="cart_a", quantity=2, expires_at=now + timedelta(minutes=5))
    # expired a second ago; the reserved counter still says 2 until the sweep runs
    StockReservation.objects.create(
        variant=released, cart_id="cart_b", quantity=2, expires_at=now - timedelta(seconds=1)
    )
    StockLevel.objects.filter(variant__in=[held, released]).update(reserved=2)
    variants = api_client.get(f"/store/products/{product.id}").json()["product"]["variants"]
    assert {v["sku"]: v["in_stock"] for v in variants} == {
        "A-OUT": False,
        "B-BACKORDER": True,
        "C-UNTRACKED": True,
        "D-HELD": False,
        "E-HOLD-EXPIRED": True,
    }


def test_products_pagination(api_client):
    for _ in range(3):
        VariantFactory()
    body = api_client.get("/store/products", {"limit": 2}).json()
    assert body["count"] == 3
    assert len(body["products"]) == 2
    assert "offset=2" in body["next"]
    assert body["previous"] is None


def test_products_unknown_region_is_404(api_client):
    assert_error(api_client.get("/store/products", {"region_id": "reg_nope"}), 404, "not_found", "region_id")


def test_product_retrieve(api_client, region_usd):
    variant = VariantFactory(prices={"usd": 1450})
    response = api_client.get(f"/store/products/{variant.product_id}", {"region_id": region_usd.id})
    assert response.status_code == 200
    assert response.json()["product"]["variants"][0]["price"] == {"amount": 1450, "currency_code": "usd"}
    assert_error(api_client.get("/store/products/prod_nope"), 404, "not_found")


# --- three-decimal pricing rule ------------------------------------------------------------


def test_three_decimal_price_must_be_multiple_of_ten_in_database():
    variant = VariantFactory(prices={"kwd": 4450})
    with pytest.raises(IntegrityError), transaction.atomic():
        Price.objects.create(variant=variant, currency_code="bhd", amount=4455)
    Price.objects.create(variant=variant, currency_code="usd", amount=4455)  # two-decimal: any amount


def test_three_decimal_price_and_shipping_validation_for_admin(region_kwd):
    variant = VariantFactory(prices={})
    with pytest.raises(ValidationError) as exc:
        Price(variant=variant, currency_code="kwd", amount=1255).full_clean()
    assert "amount" in exc.value.message_dict
    Price(variant=variant, currency_code="kwd", amount=1250).full_clean()
    with pytest.raises(ValidationError):
        ShippingOption(region=region_kwd, name="Courier", amount=1505).full_clean()
    ShippingOption(region=region_kwd, name="Courier", amount=1500).full_clean()
    with pytest.raises(ValidationError):
        Price(variant=variant, currency_code="KWD", amount=1250).full_clean()


def test_region_validation_for_admin():
    with pytest.raises(ValidationError):
        RegionFactory.build(currency_code="USD").full_clean()
    with pytest.raises(ValidationError):
        RegionFactory.build(countries=["us"]).full_clean()
    RegionFactory.build(countries=["US", "CA"]).full_clean()


# --- demo catalog ---------------------------------------------------------------------------


def test_load_demo_catalog_is_idempotent_and_complete():
    call_command("load_demo_catalog", stdout=io.StringIO())
    counts = (Region.objects.count(), Product.objects.count(), Variant.objects.count(), Price.objects.count())
    call_command("load_demo_catalog", stdout=io.StringIO())
    assert (Region.objects.count(), Product.objects.count(), Variant.objects.count(), Price.objects.count()) == counts

    regions = {r.currency_code: r for r in Region.objects.all()}
    assert {"usd", "jpy", "kwd"} <= set(regions)
    assert (regions["usd"].tax_inclusive, regions["usd"].tax_rate_bps) == (False, 875)
    assert (regions["jpy"].tax_inclusive, regions["jpy"].tax_rate_bps) == (True, 1000)
    assert StockLevel.objects.filter(on_hand=3, variant__allow_backorder=False).exists()
    assert Variant.objects.filter(allow_backorder=True).exists()
    # every variant is priced in every region's currency, and every amount is chargeable
    for variant in Variant.objects.all():
        assert set(variant.prices.values_list("currency_code", flat=True)) == set(regions)
    assert all(is_chargeable(p.amount, p.currency_code) for p in Price.objects.all())
    assert all(is_chargeable(o.amount, o.region.currency_code) for o in ShippingOption.objects.select_related("region"))
    assert all(ShippingOption.objects.filter(region=r).exists() for r in regions.values())
