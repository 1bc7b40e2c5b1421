"""The store API's JSON parser: DRF's, made total.

DRF's ``JSONParser`` turns ``ValueError`` into a 400 but lets ``RecursionError`` (a body
of 50,000 nested ``[``) escape as a 500, and accepts JSON strings with lone surrogates
(``"\\ud800"``), which are not Unicode text and which PostgreSQL cannot store. Both are
``400 malformed_json`` here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class StoreJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply.") from exc
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ParseError("JSON parse error - strings must be valid Unicode (no lone surrogates).") from exc
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply.") from exc
        return data
