"""Catalog: categories, the category filter, product thumbnails, the demo catalog's swatch
images and their serving in DEBUG (issue 11 item 3)."""

from __future__ import annotations

import importlib
import io
import xml.etree.ElementTree as ET

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import clear_url_caches
from drf_spectacular.generators import SchemaGenerator

from catalog.models import Category, Price, Product, StockLevel, Variant
from tests.factories import CategoryFactory, ProductFactory, RegionFactory, VariantFactory
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"

# The demo catalog before categories: other tests and docs/api-checkout.md rely on these.
# sku: (product handle, on hand, allow_backorder, prices)
ORIGINAL_VARIANTS = {
    "COT-POP-WHT": ("cotton-poplin", 120, False, {"usd": 1450, "jpy": 2200, "kwd": 4450, "eur": 1390}),
    "COT-POP-NVY": ("cotton-poplin", 80, False, {"usd": 1450, "jpy": 2200, "kwd": 4450, "eur": 1390}),
    "COT-LAWN-FLR": ("cotton-lawn", 60, False, {"usd": 2399, "jpy": 3600, "kwd": 7350, "eur": 2290}),
    "LIN-WSH-NAT": ("washed-linen", 90, False, {"usd": 2800, "jpy": 4200, "kwd": 8600, "eur": 2650}),
    "LIN-WSH-SGE": ("washed-linen", 45, False, {"usd": 2800, "jpy": 4200, "kwd": 8600, "eur": 2650}),
    "SLK-CHR-IVR": ("silk-charmeuse", 3, False, {"usd": 5900, "jpy": 8800, "kwd": 18050, "eur": 5600}),
    "SLK-HAB-BLK": ("silk-habotai", 0, True, {"usd": 3250, "jpy": 4900, "kwd": 9950, "eur": 3100}),
    "GIFT-25": ("gift-card", 0, False, {"usd": 2500, "jpy": 3800, "kwd": 7650, "eur": 2500}),
}


def _product(*, category: Category | None, title: str, thumbnail: str = "", variants: int = 1) -> Product:
    product = ProductFactory(category=category, title=title, thumbnail=thumbnail)
    for _ in range(variants):
        VariantFactory(product=product, prices={"usd": 1450, "eur": 1390})
    return product


# --- GET /store/categories -------------------------------------------------------------------


def test_categories_list_those_with_products_by_position_then_name(api_client, django_assert_num_queries):
    silk = CategoryFactory(handle="silk", name="Silk", position=2)
    linen = CategoryFactory(handle="linen", name="Linen", position=1)
    cotton = CategoryFactory(handle="cotton", name="Cotton", position=1)
    CategoryFactory(handle="wool", name="Wool", position=0)  # no products: no chip
    for category in (silk, linen, cotton, cotton):
        _product(category=category, title=f"{category.name} fabric")
    _product(category=None, title="Uncategorised")

    with django_assert_num_queries(1):
        response = api_client.get("/store/categories")

    assert response.status_code == 200
    assert response.json() == {
        "categories": [
            {"id": cotton.id, "handle": "cotton", "name": "Cotton"},
            {"id": linen.id, "handle": "linen", "name": "Linen"},
            {"id": silk.id, "handle": "silk", "name": "Silk"},
        ]
    }
    assert cotton.id.startswith("pcat_")


def test_categories_list_is_empty_without_categories(api_client):
    _product(category=None, title="Uncategorised")
    response = api_client.get("/store/categories/")
    assert (response.status_code, response.json()) == (200, {"categories": []})


# --- GET /store/products?category= -----------------------------------------------------------


def test_products_filter_by_category_with_region_and_pagination(api_client):
    region = RegionFactory(currency_code="eur", countries=["DE"])
    cotton = CategoryFactory(handle="cotton", name="Cotton")
    silk = CategoryFactory(handle="silk", name="Silk")
    poplin = _product(category=cotton, title="A Poplin")
    lawn = _product(category=cotton, title="B Lawn")
    jersey = _product(category=cotton, title="C Jersey")
    _product(category=silk, title="A Charmeuse")
    _product(category=None, title="A Gift Card")

    first = api_client.get("/store/products", {"category": "cotton", "region_id": region.id, "limit": 2}).json()
    assert [p["id"] for p in first["products"]] == [poplin.id, lawn.id]
    assert first["count"] == 3
    assert {p["category"]["handle"] for p in first["products"]} == {"cotton"}
    assert first["products"][0]["variants"][0]["price"] == {"amount": 1390, "currency_code": "eur"}
    assert "category=cotton" in first["next"] and "offset=2" in first["next"]

    second = api_client.get(first["next"]).json()
    assert ([p["id"] for p in second["products"]], second["next"]) == ([jersey.id], None)

    everything = api_client.get("/store/products").json()
    assert everything["count"] == 5


def test_products_unknown_category_is_an_empty_list(api_client):
    cotton = CategoryFactory(handle="cotton")
    _product(category=cotton, title="Poplin")
    response = api_client.get("/store/products", {"category": "velvet"})
    assert response.status_code == 200
    assert response.json() == {"products": [], "count": 0, "next": None, "previous": None}


def test_products_category_too_long_is_a_validation_error(api_client):
    assert_error(api_client.get("/store/products", {"category": "x" * 101}), 400, "validation_error", "category")


def test_product_retrieve_carries_its_category(api_client):
    cotton = CategoryFactory(handle="cotton", name="Cotton")
    product = _product(category=cotton, title="Poplin")
    body = api_client.get(f"/store/products/{product.id}").json()["product"]
    assert body["category"] == {"handle": "cotton", "name": "Cotton"}


def test_deleting_a_category_leaves_its_products_uncategorised(api_client):
    cotton = CategoryFactory(handle="cotton", name="Cotton")
    product = _product(category=cotton, title="Poplin")
    cotton.delete()
    assert api_client.get(f"/store/products/{product.id}").json()["product"]["category"] is None


# --- thumbnails ---------------------------------------------------------------------------------


def test_product_thumbnail_is_absolute_unchanged_or_null(api_client, settings):
    settings.ALLOWED_HOSTS = ["testserver", "shop.example.com"]
    local = _product(category=None, title="A", thumbnail="/media/products/cotton-poplin.svg")
    remote = _product(category=None, title="B", thumbnail="https://images.example.com/silk.svg")
    bare = _product(category=None, title="C")
    thumbnails = {p["id"]: p["thumbnail"] for p in api_client.get("/store/products").json()["products"]}
    assert thumbnails == {
        local.id: "http://testserver/media/products/cotton-poplin.svg",
        remote.id: "https://images.example.com/silk.svg",
        bare.id: None,
    }
    one = api_client.get(f"/store/products/{local.id}", HTTP_HOST="shop.example.com", secure=True).json()
    assert one["product"]["thumbnail"] == "https://shop.example.com/media/products/cotton-poplin.svg"


# --- query budget -------------------------------------------------------------------------------


@pytest.mark.parametrize("products", [1, 8])
def test_products_list_queries_do_not_grow_with_products_or_categories(api_client, django_assert_num_queries, products):
    """count, products with their category (a join), variants with stock and holds, prices; + the region."""
    region = RegionFactory()
    categories = [CategoryFactory() for _ in range(3)]
    for i in range(products):
        _product(category=categories[i % 3], title=f"Fabric {i}", thumbnail=f"/media/products/f{i}.svg", variants=2)

    with django_assert_num_queries(5):
        body = api_client.get("/store/products", {"region_id": region.id}).json()
    assert len(body["products"]) == products

    with django_assert_num_queries(5):
        body = api_client.get("/store/products", {"region_id": region.id, "category": categories[0].handle}).json()
    assert len(body["products"]) == (products + 2) // 3


# --- the documented schema -------------------------------------------------------------------


def test_real_category_responses_match_the_documented_schema(api_client):
    from tests.test_openapi import _validator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    cotton = CategoryFactory(handle="cotton", name="Cotton")
    _product(category=cotton, title="Poplin", thumbnail="/media/products/cotton-poplin.svg")
    _product(category=None, title="Gift card")
    for path, response in [
        ("/store/categories", api_client.get("/store/categories")),
        ("/store/products", api_client.get("/store/products", {"category": "cotton"})),
        ("/store/products", api_client.get("/store/products")),
    ]:
        assert response.status_code == 200
        documented = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        errors = [e.message for e in _validator(schema, documented).iter_errors(response.json())]
        assert not errors, (path, errors)
    parameters = {p["name"] for p in schema["paths"]["/store/products"]["get"]["parameters"]}
    assert {"category", "region_id", "limit", "offset"} <= parameters
    assert "category" not in {p["name"] for p in schema["paths"]["/store/products/{id}"]["get"]["parameters"]}


# --- the demo catalog ---------------------------------------------------------------------------


def _load_demo(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    call_command("load_demo_catalog", stdout=io.StringIO())
    return tmp_path / "media" / "products"


def _rows():
    return {
        "categories": sorted(Category.objects.values_list("id", "handle", "name", "position")),
        "products": sorted(Product.objects.values_list("id", "handle", "title", "category__handle", "thumbnail")),
        "variants": sorted(Variant.objects.values_list("id", "sku", "product_id")),
        "stock": sorted(StockLevel.objects.values_list("variant__sku", "on_hand")),
        "prices": sorted(Price.objects.values_list("variant__sku", "currency_code", "amount")),
    }


def test_load_demo_catalog_draws_one_swatch_per_product(tmp_path, settings):
    images = _load_demo(tmp_path, settings)

    products = list(Product.objects.all())
    assert 12 <= len(products) <= 14
    assert sorted(p.name for p in images.iterdir()) == sorted(f"{p.handle}.svg" for p in products)
    for product in products:
        path = images / f"{product.handle}.svg"
        assert 500 <= path.stat().st_size <= 3 * 1024, (path.name, path.stat().st_size)
        root = ET.fromstring(path.read_bytes())
        assert root.tag == f"{SVG}svg"
        assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("240", "160", "0 0 240 160")
        assert root.find(f"{SVG}title").text == product.title
        text = path.read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
        assert product.thumbnail == f"/media/products/{product.handle}.svg"
    # swatches differ: each product drawn in its own colours and pattern
    assert len({(images / f"{p.handle}.svg").read_bytes() for p in products}) == len(products)


def test_load_demo_catalog_categories(tmp_path, settings, api_client):
    _load_demo(tmp_path, settings)

    body = api_client.get("/store/categories").json()
    assert [(c["handle"], c["name"]) for c in body["categories"]] == [
        ("cotton", "Cotton"),
        ("linen", "Linen"),
        ("silk", "Silk"),
        ("notions-gifts", "Notions & gifts"),
    ]
    assert not Product.objects.filter(category__isnull=True).exists()
    for category in Category.objects.all():
        assert category.products.count() >= 3, category.handle
        listed = api_client.get("/store/products", {"category": category.handle, "limit": 100}).json()
        assert listed["count"] == category.products.count()


def test_load_demo_catalog_twice_keeps_rows_and_files(tmp_path, settings):
    images = _load_demo(tmp_path, settings)
    rows = _rows()
    files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in images.iterdir()}

    _load_demo(tmp_path, settings)

    assert _rows() == rows
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in images.iterdir()} == files  # not rewritten


def test_load_demo_catalog_redraws_a_changed_or_missing_swatch(tmp_path, settings):
    images = _load_demo(tmp_path, settings)
    poplin = (images / "cotton-poplin.svg").read_bytes()
    (images / "cotton-poplin.svg").write_text("<svg/>")
    (images / "gift-card.svg").unlink()

    _load_demo(tmp_path, settings)

    assert (images / "cotton-poplin.svg").read_bytes() == poplin
    assert ET.fromstring((images / "gift-card.svg").read_bytes()).find(f"{SVG}title").text == "Fabric Gift Card"


def test_load_demo_catalog_keeps_the_original_products(tmp_path, settings):
    _load_demo(tmp_path, settings)

    for sku, (handle, on_hand, backorder, prices) in ORIGINAL_VARIANTS.items():
        variant = Variant.objects.select_related("product", "stock").get(sku=sku)
        assert variant.product.handle == handle, sku
        assert (variant.stock.on_hand, variant.allow_backorder) == (on_hand, backorder), sku
        assert dict(variant.prices.values_list("currency_code", "amount")) == prices, sku
    assert not Variant.objects.get(sku="GIFT-25").manage_inventory
    titles = dict(Product.objects.values_list("handle", "title"))
    assert titles["silk-charmeuse"] == "Silk Charmeuse" and titles["cotton-poplin"] == "Organic Cotton Poplin"
    # the new products too: priced in all four currencies, KWD in 10-fils steps, stock tracked
    for variant in Variant.objects.exclude(sku__in=ORIGINAL_VARIANTS):
        prices = dict(variant.prices.values_list("currency_code", "amount"))
        assert set(prices) == {"usd", "jpy", "kwd", "eur"} and prices["kwd"] % 10 == 0, variant.sku
        assert variant.stock.on_hand >= 20, variant.sku


# --- serving the images in DEBUG ---------------------------------------------------------------


@pytest.fixture
def debug_urls(settings, tmp_path):
    """config.urls as imported with DEBUG on (``static()`` adds /media/ only then)."""
    import config.urls

    settings.DEBUG = True
    settings.MEDIA_ROOT = tmp_path / "media"
    importlib.reload(config.urls)
    clear_url_caches()
    yield
    settings.DEBUG = False
    importlib.reload(config.urls)
    clear_url_caches()


def test_media_is_served_in_debug_as_svg(debug_urls, settings):
    call_command("load_demo_catalog", stdout=io.StringIO())
    client = Client()

    response = client.get("/media/products/cotton-poplin.svg")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    body = b"".join(response.streaming_content)
    assert body == (settings.MEDIA_ROOT / "products" / "cotton-poplin.svg").read_bytes()
    assert client.get("/media/products/velvet.svg").status_code == 404
    # the storefront still answers at its own paths
    assert client.get("/").status_code == 200


def test_media_is_not_served_without_debug(tmp_path, settings):
    _load_demo(tmp_path, settings)
    assert Client().get("/media/products/cotton-poplin.svg").status_code == 404
