"""Load the demo fabric store: regions, categories, products with their swatch images, variants,
prices, stock, shipping options.

Idempotent: running it again updates the same rows (matched by name, handle and sku) and
rewrites no image (each is drawn from its product's handle: catalog/management/swatches.py).
The images go to ``MEDIA_ROOT/products/<handle>.svg``, the products' ``thumbnail`` is
``MEDIA_URL + "products/<handle>.svg"``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from catalog.management.swatches import swatch_svg
from catalog.models import Category, Price, Product, Region, ShippingOption, StockLevel, Variant

REGIONS = [
    # name, currency, countries, tax bps, inclusive, shipping options (name, amount)
    ("United States", "usd", ["US"], 875, False, [("Standard", 500), ("Express", 1500)]),
    ("Japan", "jpy", ["JP"], 1000, True, [("Standard", 600), ("Express", 1500)]),
    ("Kuwait", "kwd", ["KW"], 500, False, [("Standard", 1500), ("Express", 4000)]),
    ("Europe", "eur", ["DE", "FR", "NL", "IT", "ES"], 1900, True, [("Standard", 700), ("Express", 1900)]),
]

CATEGORIES = [
    # handle, name, position
    ("cotton", "Cotton", 10),
    ("linen", "Linen", 20),
    ("silk", "Silk", 30),
    ("notions-gifts", "Notions & gifts", 40),
]

Prices = dict[str, int]
VariantRow = tuple[str, str, int, bool, bool, Prices]
# handle, title, description, category handle, swatch (pattern, base colour, accent colour),
# variants: (sku, title, stock, manage_inventory, allow_backorder, prices)
# prices per metre: usd cents, jpy yen, kwd fils (multiples of 10), eur cents.
PRODUCTS: list[tuple[str, str, str, str, tuple[str, str, str], list[VariantRow]]] = [
    (
        "cotton-poplin",
        "Organic Cotton Poplin",
        "Crisp, tightly woven organic cotton, 150 cm wide. Sold per metre.",
        "cotton",
        ("plain", "#f4f1ea", "#1f2a44"),
        [
            ("COT-POP-WHT", "White", 120, True, False, {"usd": 1450, "jpy": 2200, "kwd": 4450, "eur": 1390}),
            ("COT-POP-NVY", "Navy", 80, True, False, {"usd": 1450, "jpy": 2200, "kwd": 4450, "eur": 1390}),
        ],
    ),
    (
        "cotton-lawn",
        "Liberty-style Cotton Lawn",
        "Fine, silky cotton lawn with a small floral print, 137 cm wide. Sold per metre.",
        "cotton",
        ("floral", "#f6efe4", "#c2476b"),
        [("COT-LAWN-FLR", "Floral", 60, True, False, {"usd": 2399, "jpy": 3600, "kwd": 7350, "eur": 2290})],
    ),
    (
        "cotton-jersey",
        "Cotton Jersey",
        "Soft single-knit cotton jersey with 5 % elastane, 160 cm wide. Sold per metre.",
        "cotton",
        ("knit", "#9a9ea3", "#d9a633"),
        [
            ("COT-JER-HGR", "Heather grey", 70, True, False, {"usd": 1800, "jpy": 2700, "kwd": 5530, "eur": 1720}),
            ("COT-JER-MST", "Mustard", 40, True, False, {"usd": 1800, "jpy": 2700, "kwd": 5530, "eur": 1720}),
        ],
    ),
    (
        "cotton-canvas",
        "Cotton Canvas",
        "Heavy 12 oz cotton duck canvas for bags and upholstery, 150 cm wide. Sold per metre.",
        "cotton",
        ("canvas", "#d8c9a8", "#5b6236"),
        [
            ("COT-CNV-NAT", "Natural", 100, True, False, {"usd": 1650, "jpy": 2500, "kwd": 5070, "eur": 1570}),
            ("COT-CNV-OLV", "Olive", 50, True, False, {"usd": 1650, "jpy": 2500, "kwd": 5070, "eur": 1570}),
        ],
    ),
    (
        "washed-linen",
        "Washed Linen",
        "Stonewashed European linen, soft drape, 140 cm wide. Sold per metre.",
        "linen",
        ("slub", "#cfc2a8", "#8fa58a"),
        [
            ("LIN-WSH-NAT", "Natural", 90, True, False, {"usd": 2800, "jpy": 4200, "kwd": 8600, "eur": 2650}),
            ("LIN-WSH-SGE", "Sage", 45, True, False, {"usd": 2800, "jpy": 4200, "kwd": 8600, "eur": 2650}),
        ],
    ),
    (
        "linen-cotton-blend",
        "Linen-Cotton Blend",
        "55 % linen, 45 % cotton: the texture of linen with fewer creases, 145 cm wide. Sold per metre.",
        "linen",
        ("slub", "#e3d8c3", "#c99a94"),
        [
            ("LIN-BLD-OAT", "Oatmeal", 75, True, False, {"usd": 2200, "jpy": 3300, "kwd": 6750, "eur": 2090}),
            ("LIN-BLD-RSE", "Dusty rose", 35, True, False, {"usd": 2200, "jpy": 3300, "kwd": 6750, "eur": 2090}),
        ],
    ),
    (
        "heavy-linen",
        "Heavy Linen",
        "Dense 300 gsm linen for jackets, trousers and cushions, 150 cm wide. Sold per metre.",
        "linen",
        ("slub", "#4a4c50", "#a8552f"),
        [
            ("LIN-HVY-CHR", "Charcoal", 40, True, False, {"usd": 3400, "jpy": 5100, "kwd": 10440, "eur": 3230}),
            ("LIN-HVY-RST", "Rust", 25, True, False, {"usd": 3400, "jpy": 5100, "kwd": 10440, "eur": 3230}),
        ],
    ),
    (
        "silk-charmeuse",
        "Silk Charmeuse",
        "19 momme mulberry silk charmeuse, 114 cm wide. Sold per metre. Only a few metres left.",
        "silk",
        ("sheen", "#efe6d2", "#b9a987"),
        [("SLK-CHR-IVR", "Ivory", 3, True, False, {"usd": 5900, "jpy": 8800, "kwd": 18050, "eur": 5600})],
    ),
    (
        "silk-habotai",
        "Silk Habotai",
        "Lightweight habotai lining silk, 140 cm wide. Sold per metre; backorders ship in 2 weeks.",
        "silk",
        ("sheen", "#1b1b1f", "#5a5a66"),
        [("SLK-HAB-BLK", "Black", 0, True, True, {"usd": 3250, "jpy": 4900, "kwd": 9950, "eur": 3100})],
    ),
    (
        "silk-organza",
        "Silk Organza",
        "Sheer, crisp silk organza for underlining, interfacing and veils, 140 cm wide. Sold per metre.",
        "silk",
        ("organza", "#f3d9d4", "#ffffff"),
        [
            ("SLK-ORG-WHT", "White", 30, True, False, {"usd": 3600, "jpy": 5400, "kwd": 11050, "eur": 3420}),
            ("SLK-ORG-BLS", "Blush", 20, True, False, {"usd": 3600, "jpy": 5400, "kwd": 11050, "eur": 3420}),
        ],
    ),
    (
        "gift-card",
        "Fabric Gift Card",
        "A digital gift card. No stock tracking.",
        "notions-gifts",
        ("gift", "#2f5d50", "#e0b44c"),
        [("GIFT-25", "25", 0, False, False, {"usd": 2500, "jpy": 3800, "kwd": 7650, "eur": 2500})],
    ),
    (
        "thread-set",
        "Cotton Thread Set",
        "Twelve 100 m spools of mercerised cotton thread in a wooden box.",
        "notions-gifts",
        ("spools", "#c8a577", "#6b4a2b"),
        [("NOT-THR-12", "12 spools", 50, True, False, {"usd": 2950, "jpy": 4400, "kwd": 9060, "eur": 2800})],
    ),
    (
        "pinking-shears",
        "Pinking Shears",
        "23 cm stainless-steel pinking shears: a zigzag edge that keeps woven fabric from fraying.",
        "notions-gifts",
        ("pinking", "#7b9cc4", "#3b3f46"),
        [("NOT-PNK-23", "23 cm", 25, True, False, {"usd": 3900, "jpy": 5800, "kwd": 11980, "eur": 3700})],
    ),
]


def _write_if_changed(path: Path, content: str) -> bool:
    """Write ``content`` atomically (a concurrent reader never sees half a file); False if already there."""
    if path.exists() and path.read_text(encoding="utf-8") == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(content)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True


class Command(BaseCommand):
    help = "Load (or refresh) the demo fabric-store catalog and draw its product images."

    def handle(self, *args: Any, **options: Any) -> None:
        images = Path(settings.MEDIA_ROOT) / "products"
        written = 0
        for handle, title, _, _, (pattern, base, accent), _ in PRODUCTS:
            svg = swatch_svg(handle=handle, title=title, pattern=pattern, base=base, accent=accent)
            written += _write_if_changed(images / f"{handle}.svg", svg)
        self._load_rows()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo catalog: {Region.objects.count()} regions, {Category.objects.count()} categories, "
                f"{Product.objects.count()} products, {Variant.objects.count()} variants; "
                f"{len(PRODUCTS)} images in {images} ({written} written)."
            )
        )

    @transaction.atomic
    def _load_rows(self) -> None:
        for name, currency, countries, bps, inclusive, shipping in REGIONS:
            region, _ = Region.objects.update_or_create(
                name=name,
                defaults={
                    "currency_code": currency,
                    "countries": countries,
                    "tax_rate_bps": bps,
                    "tax_inclusive": inclusive,
                },
            )
            for option_name, amount in shipping:
                ShippingOption.objects.update_or_create(region=region, name=option_name, defaults={"amount": amount})
        categories = {
            handle: Category.objects.update_or_create(handle=handle, defaults={"name": name, "position": position})[0]
            for handle, name, position in CATEGORIES
        }
        for handle, title, description, category, _, variants in PRODUCTS:
            product, _ = Product.objects.update_or_create(
                handle=handle,
                defaults={
                    "title": title,
                    "description": description,
                    "category": categories[category],
                    "thumbnail": f"{settings.MEDIA_URL}products/{handle}.svg",
                },
            )
            for sku, vtitle, stock, managed, backorder, prices in variants:
                variant, _ = Variant.objects.update_or_create(
                    sku=sku,
                    defaults={
                        "product": product,
                        "title": vtitle,
                        "manage_inventory": managed,
                        "allow_backorder": backorder,
                    },
                )
                StockLevel.objects.update_or_create(variant=variant, defaults={"on_hand": stock})
                for currency, amount in prices.items():
                    Price.objects.update_or_create(variant=variant, currency_code=currency, defaults={"amount": amount})
