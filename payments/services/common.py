"""Helpers shared by the payments services."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def idempotency_key(*parts: object, params: dict[str, Any] | None = None) -> str:
    """A deterministic Stripe idempotency key: ``part:part:...[:digest of params]``.

    The digest makes a key change whenever the request body changes, so that a replay is
    only ever of the identical request (Stripe answers 400 to a key reused with other params).
    """
    key = ":".join(str(p) for p in parts)
    if params is not None:
        digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
        key = f"{key}:{digest}"
    return key


def id_of(value: Any) -> str:
    """The id of a reference in a Stripe object: an id, or an expanded object ("" for none)."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def customer_of(obj: dict[str, Any]) -> str | None:
    """The Customer id of an intent or payment method (an id, or an expanded object)."""
    customer = obj.get("customer")
    return customer.get("id") if isinstance(customer, dict) else customer


def intent_payment_method(payment_intent: dict[str, Any]) -> str | None:
    method = payment_intent.get("payment_method")
    return method.get("id") if isinstance(method, dict) else method
