from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog import selectors
from catalog.models import Category, Product, Region, ShippingOption, Variant


class RegionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Region
        fields = ["id", "name", "currency_code", "countries", "tax_rate_bps", "tax_inclusive"]


class PriceSerializer(serializers.Serializer):
    amount = serializers.IntegerField()
    currency_code = serializers.CharField()


class VariantSerializer(serializers.ModelSerializer):
    price = serializers.SerializerMethodField()
    in_stock = serializers.SerializerMethodField()

    class Meta:
        model = Variant
        fields = ["id", "sku", "title", "price", "in_stock"]

    @extend_schema_field(PriceSerializer(allow_null=True))
    def get_price(self, variant: Variant) -> dict[str, Any] | None:
        prices = getattr(variant, "region_prices", [])
        if not prices:
            return None
        return {"amount": prices[0].amount, "currency_code": prices[0].currency_code}

    def get_in_stock(self, variant: Variant) -> bool:
        return selectors.variant_in_stock(variant)


class CategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["id", "handle", "name"]


class ProductCategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["handle", "name"]


class ProductSerializer(serializers.ModelSerializer):
    """``thumbnail`` is absolute: a stored path is joined to this request's origin (needs
    ``context={"request": ...}``; without one the path is returned as stored)."""

    category = ProductCategorySerializer(allow_null=True)
    thumbnail = serializers.SerializerMethodField()
    variants = VariantSerializer(many=True)

    class Meta:
        model = Product
        fields = ["id", "title", "handle", "description", "category", "thumbnail", "variants"]

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_thumbnail(self, product: Product) -> str | None:
        if not product.thumbnail:
            return None
        request = self.context.get("request")
        if request is None or urlsplit(product.thumbnail).scheme:
            return product.thumbnail
        return request.build_absolute_uri(product.thumbnail)


class ShippingOptionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ShippingOption
        fields = ["id", "name", "amount"]


class ProductQuerySerializer(serializers.Serializer):
    region_id = serializers.CharField(
        required=False, max_length=40, help_text="Price the variants in this region's currency."
    )


class ProductListQuerySerializer(ProductQuerySerializer):
    category = serializers.CharField(
        required=False,
        max_length=100,
        help_text="Only this category's products, by `handle` (GET /store/categories); an unknown one: none.",
    )


class ShippingOptionQuerySerializer(serializers.Serializer):
    cart_id = serializers.CharField(max_length=40, help_text="Options of this cart's region.")
