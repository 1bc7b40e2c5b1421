"""Strict DRF input fields: JSON types are not coerced (API.md: a wrong type is a 400).

DRF's own fields accept ``"3"`` and ``3.0`` for an integer and ``12`` for a string;
the store API does not. Output is unchanged.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only: no strings, floats or booleans."""

    default_error_messages = {"invalid": "A JSON integer is required."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictStringMixin:
    """A JSON string only: no numbers, booleans, lists or objects."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid")  # type: ignore[attr-defined]
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictCharField(StrictStringMixin, serializers.CharField):
    default_error_messages = {"invalid": "A JSON string is required."}


class StrictEmailField(StrictStringMixin, serializers.EmailField):
    default_error_messages = {"invalid": "Enter a valid email address."}


class StrictRegexField(StrictStringMixin, serializers.RegexField):
    default_error_messages = {"invalid": "This value does not match the required pattern."}


class StrictBooleanField(serializers.BooleanField):
    """A JSON ``true``/``false`` only."""

    default_error_messages = {"invalid": "A JSON boolean is required."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data
