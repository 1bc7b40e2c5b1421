"""Load the demo fabric store: regions, products, variants, prices, stock, shipping options.

Idempotent: running it again updates the same rows (matched by name, handle and sku).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from catalog.models import Price, Product, Region, ShippingOption, StockLevel, Variant

REGIONS = [
    # name, currency, countries, tax bps, inclusive, shipping options (name, amount)
    ("United States", "usd", ["US"], 875, False, [("Standard", 500), ("Express", 1500)]),
    ("Japan", "jpy", ["JP"], 1000, True, [("Standard", 600), ("Express", 1500)]),
    ("Kuwait", "kwd", ["KW"], 500, False, [("Standard", 1500), ("Express", 4000)]),
    ("Europe", "eur", ["DE", "FR", "NL", "IT", "ES"], 1900, True, [("Standard", 700), ("Express", 1900)]),
]

# handle, title, description, variants: (sku, title, stock, manage_inventory, allow_backorder, prices)
# prices per metre: usd cents, jpy yen, kwd fils, eur cents.
PRODUCTS: list[tuple[str, str, str, list[tuple[str, str, int, bool, bool, dict[str, int]]]]] = [
    (
        "cotton-poplin",
        "Organic Cotton Poplin",
        "Crisp, tightly woven organic cotton, 150 cm wide. Sold per metre.",
        [
            ("COT-POP-WHT", "White", 120, True, False, {"usd": 1450, "jpy": 2200, "kwd": 4450, "eur": 1390}),
            ("COT-POP-NVY", "Navy", 80, True, False, {"usd": 1450, "jpy": 2200, "kwd": 4450, "eur": 1390}),
        ],
    ),
    (
        "cotton-lawn",
        "Liberty-style Cotton Lawn",
        "Fine, silky cotton lawn with a small floral print, 137 cm wide. Sold per metre.",
        [("COT-LAWN-FLR", "Floral", 60, True, False, {"usd": 2399, "jpy": 3600, "kwd": 7350, "eur": 2290})],
    ),
    (
        "washed-linen",
        "Washed Linen",
        "Stonewashed European linen, soft drape, 140 cm wide. Sold per metre.",
        [
            ("LIN-WSH-NAT", "Natural", 90, True, False, {"usd": 2800, "jpy": 4200, "kwd": 8600, "eur": 2650}),
            ("LIN-WSH-SGE", "Sage", 45, True, False, {"usd": 2800, "jpy": 4200, "kwd": 8600, "eur": 2650}),
        ],
    ),
    (
        "silk-charmeuse",
        "Silk Charmeuse",
        "19 momme mulberry silk charmeuse, 114 cm wide. Sold per metre. Only a few metres left.",
        [("SLK-CHR-IVR", "Ivory", 3, True, False, {"usd": 5900, "jpy": 8800, "kwd": 18050, "eur": 5600})],
    ),
    (
        "silk-habotai",
        "Silk Habotai",
        "Lightweight habotai lining silk, 140 cm wide. Sold per metre; backorders ship in 2 weeks.",
        [("SLK-HAB-BLK", "Black", 0, True, True, {"usd": 3250, "jpy": 4900, "kwd": 9950, "eur": 3100})],
    ),
    (
        "gift-card",
        "Fabric Gift Card",
        "A digital gift card. No stock tracking.",
        [("GIFT-25", "25", 0, False, False, {"usd": 2500, "jpy": 3800, "kwd": 7650, "eur": 2500})],
    ),
]


class Command(BaseCommand):
    help = "Load (or refresh) the demo fabric-store catalog."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        for name, currency, countries, bps, inclusive, shipping in REGIONS:
            region, _ = Region.objects.update_or_create(
                name=name,
                defaults={"currency_code": currency, "countries": countries, "tax_rate_bps": bps, "tax_inclusive": inclusive},
            )
            for option_name, amount in shipping:
                ShippingOption.objects.update_or_create(region=region, name=option_name, defaults={"amount": amount})
        for handle, title, description, variants in PRODUCTS:
            product, _ = Product.objects.update_or_create(
                handle=handle, defaults={"title": title, "description": description}
            )
            for sku, vtitle, stock, managed, backorder, prices in variants:
                variant, _ = Variant.objects.update_or_create(
                    sku=sku,
                    defaults={"product": product, "title": vtitle, "manage_inventory": managed, "allow_backorder": backorder},
                )
                StockLevel.objects.update_or_create(variant=variant, defaults={"on_hand": stock})
                for currency, amount in prices.items():
                    Price.objects.update_or_create(variant=variant, currency_code=currency, defaults={"amount": amount})
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo catalog: {Region.objects.count()} regions, {Product.objects.count()} products, "
                f"{Variant.objects.count()} variants."
            )
        )
