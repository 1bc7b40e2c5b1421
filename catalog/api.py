from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from catalog import selectors
from catalog.serializers import ProductListQuerySerializer, ProductSerializer, RegionSerializer
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


class ProductViewSet(viewsets.GenericViewSet):
    serializer_class = ProductSerializer
    pagination_class = keyed_pagination("products")

    def _currency(self, request: Request) -> str | None:
        query = ProductListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        region_id = query.validated_data.get("region_id")
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
        "variant's `price` is in that region's currency (null when it has none there).",
        tags=["catalog"],
        examples=[
            _ok(
                "Products priced in USD",
                {
                    "products": [EXAMPLE_PRODUCT],
                    "count": 6,
                    "next": "http://127.0.0.1:8000/store/products?limit=1&offset=1&region_id=reg_01m8v8trdwtdb47ec74sdcrj8y",
                    "previous": None,
                },
            )
        ],
    )
    def list(self, request: Request) -> Response:
        products = selectors.product_list(currency_code=self._currency(request))
        page = self.paginate_queryset(products)
        return self.get_paginated_response(ProductSerializer(page, many=True).data)

    @extend_schema(
        parameters=[ProductListQuerySerializer],
        responses=envelope("ProductResponse", {"product": ProductSerializer()}),
        summary="Retrieve a product",
        description="With `region_id`, each variant's `price` is in that region's currency.",
        tags=["catalog"],
        examples=[_ok("Product", {"product": EXAMPLE_PRODUCT})],
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        product = selectors.product_get(product_id=pk, currency_code=self._currency(request))
        return Response({"product": ProductSerializer(product).data})

