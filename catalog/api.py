from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from catalog import selectors
from catalog.serializers import (
    CategorySerializer,
    ProductListQuerySerializer,
    ProductQuerySerializer,
    ProductSerializer,
    RegionSerializer,
)
from common.pagination import keyed_pagination
from common.schema import envelope

# --- OpenAPI examples (the demo catalog; prices in the region's minor unit) --------------------
EXAMPLE_REGION: dict[str, Any] = {
    "id": "reg_01m8v8trdwtdb47ec74sdcrj8y",
    "name": "United States",
    "currency_code": "usd",
    "countries": ["US"],
    "tax_rate_bps": 875,
    "tax_inclusive": False,
}
EXAMPLE_PRODUCT: dict[str, Any] = {
    "id": "prod_01m8v8trgwhb4pexzd0cc55bzv",
    "title": "Liberty-style Cotton Lawn",
    "handle": "cotton-lawn",
    "description": "Fine, silky cotton lawn with a small floral print, 137 cm wide. Sold per metre.",
    "category": {"handle": "cotton", "name": "Cotton"},
    "thumbnail": "http://127.0.0.1:8000/media/products/cotton-lawn.svg",
    "variants": [
        {
            "id": "variant_01m8v8trgysqmhxx8prpe9wpb9",
            "sku": "COT-LAWN-FLR",
            "title": "Floral",
            "price": {"amount": 2399, "currency_code": "usd"},
            "in_stock": True,
        }
    ],
}

EXAMPLE_CATEGORIES: list[dict[str, Any]] = [
    {"id": "pcat_01m8v8trgq5kfb8m0xg3h2d7ne", "handle": "cotton", "name": "Cotton"},
    {"id": "pcat_01m8v8trgr0q2n9w6c8ay5tj1s", "handle": "linen", "name": "Linen"},
    {"id": "pcat_01m8v8trgs7h4e3z1v6pkd0b9m", "handle": "silk", "name": "Silk"},
    {"id": "pcat_01m8v8trgtb2x5c7n0qj8w4f6r", "handle": "notions-gifts", "name": "Notions & gifts"},
]


def _ok(name: str, value: dict[str, Any]) -> OpenApiExample:
    return OpenApiExample(name, value=value, response_only=True, status_codes=["200"])


class RegionViewSet(viewsets.ViewSet):
    @extend_schema(
        responses=envelope("RegionListResponse", {"regions": RegionSerializer(many=True)}),
        operation_id="regions_list",
        summary="List regions",
        description="Each region has one currency (lower-case ISO 4217), its countries and its tax rule "
        "(`tax_rate_bps` in basis points; `tax_inclusive` prices already contain tax).",
        tags=["catalog"],
        examples=[
            _ok(
                "Regions",
                {
                    "regions": [
                        EXAMPLE_REGION,
                        {
                            "id": "reg_01m8v8treamg1zq6drj3f7zxxv",
                            "name": "Japan",
                            "currency_code": "jpy",
                            "countries": ["JP"],
                            "tax_rate_bps": 1000,
                            "tax_inclusive": True,
                        },
                    ]
                },
            )
        ],
    )
    def list(self, request: Request) -> Response:
        return Response({"regions": RegionSerializer(selectors.region_list(), many=True).data})


class CategoryViewSet(viewsets.ViewSet):
    @extend_schema(
        responses=envelope("CategoryListResponse", {"categories": CategorySerializer(many=True)}),
        operation_id="categories_list",
        summary="List categories",
        description="The categories that have at least one product, ordered as the shop arranged them. "
        "Pass a `handle` as `GET /store/products?category=` to list its products.",
        tags=["catalog"],
        examples=[_ok("Categories", {"categories": EXAMPLE_CATEGORIES})],
    )
    def list(self, request: Request) -> Response:
        return Response({"categories": CategorySerializer(selectors.category_list(), many=True).data})


class ProductViewSet(viewsets.GenericViewSet):
    serializer_class = ProductSerializer
    pagination_class = keyed_pagination("products")

    def _query(self, request: Request, serializer: type[ProductQuerySerializer]) -> dict[str, Any]:
        query = serializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return dict(query.validated_data)

    def _currency(self, query: dict[str, Any]) -> str | None:
        region_id = query.get("region_id")
        return selectors.region_get(region_id=region_id).currency_code if region_id else None

    @extend_schema(
        parameters=[ProductListQuerySerializer],
        responses=envelope(
            "ProductListResponse",
            {
                "products": ProductSerializer(many=True),
                "count": serializers.IntegerField(),
                "next": serializers.URLField(allow_null=True),
                "previous": serializers.URLField(allow_null=True),
            },
        ),
        summary="List products",
        description="Paginated with `limit` (default 20, at most 100) and `offset`. With `region_id`, each "
        "variant's `price` is in that region's currency (null when it has none there). With `category` (a "
        "handle from `GET /store/categories`), only that category's products. `thumbnail` is an absolute "
        "URL, or null.",
        tags=["catalog"],
        examples=[
            _ok(
                "Cotton products priced in USD",
                {
                    "products": [EXAMPLE_PRODUCT],
                    "count": 4,
                    "next": "http://127.0.0.1:8000/store/products?category=cotton&limit=1&offset=1"
                    "&region_id=reg_01m8v8trdwtdb47ec74sdcrj8y",
                    "previous": None,
                },
            )
        ],
    )
    def list(self, request: Request) -> Response:
        query = self._query(request, ProductListQuerySerializer)
        products = selectors.product_list(currency_code=self._currency(query), category_handle=query.get("category"))
        page = self.paginate_queryset(products)
        return self.get_paginated_response(ProductSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(
        parameters=[ProductQuerySerializer],
        responses=envelope("ProductResponse", {"product": ProductSerializer()}),
        summary="Retrieve a product",
        description="With `region_id`, each variant's `price` is in that region's currency.",
        tags=["catalog"],
        examples=[_ok("Product", {"product": EXAMPLE_PRODUCT})],
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        query = self._query(request, ProductQuerySerializer)
        product = selectors.product_get(product_id=pk, currency_code=self._currency(query))
        return Response({"product": ProductSerializer(product, context={"request": request}).data})
