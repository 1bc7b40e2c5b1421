from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from catalog import selectors
from catalog.serializers import ProductListQuerySerializer, ProductSerializer, RegionSerializer
from common.pagination import keyed_pagination


class RegionViewSet(viewsets.ViewSet):
    @extend_schema(
        responses=inline_serializer("RegionListResponse", {"regions": RegionSerializer(many=True)}),
        operation_id="regions_list",
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

    @extend_schema(parameters=[ProductListQuerySerializer])
    def list(self, request: Request) -> Response:
        products = selectors.product_list(currency_code=self._currency(request))
        page = self.paginate_queryset(products)
        return self.get_paginated_response(ProductSerializer(page, many=True).data)

    @extend_schema(
        parameters=[ProductListQuerySerializer],
        responses=inline_serializer("ProductResponse", {"product": ProductSerializer()}),
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        product = selectors.product_get(product_id=pk, currency_code=self._currency(request))
        return Response({"product": ProductSerializer(product).data})

