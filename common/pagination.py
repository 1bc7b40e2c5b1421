from __future__ import annotations

from typing import Any

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response


class KeyedLimitOffsetPagination(LimitOffsetPagination):
    """``{"<key>": [...], "count", "next", "previous"}`` with ?limit=&offset=."""

    default_limit = 20
    max_limit = 100
    results_key = "results"

    def get_paginated_response(self, data: Any) -> Response:
        return Response(
            {
                self.results_key: data,
                "count": self.count,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": [self.results_key, "count", "next", "previous"],
            "properties": {
                self.results_key: schema,
                "count": {"type": "integer"},
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "previous": {"type": "string", "nullable": True, "format": "uri"},
            },
        }


def keyed_pagination(key: str) -> type[KeyedLimitOffsetPagination]:
    return type(f"{key.title()}Pagination", (KeyedLimitOffsetPagination,), {"results_key": key})
