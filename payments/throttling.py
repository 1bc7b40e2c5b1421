"""Throttles for payment-session creation (card-testing defence): per cart and per client IP.

Fixed windows on the default cache (common.throttling); rates ``payment_session_cart`` and
``payment_session_ip`` in ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from common.throttling import ClientIpThrottle, FixedWindowThrottle


class PaymentSessionCartThrottle(FixedWindowThrottle):
    """Per cart (the ``pk`` URL argument), whoever calls."""

    scope = "payment_session_cart"

    def ident(self, request: Any, view: Any) -> str | None:
        """SHA-256 of the URL's cart id: a fixed-length ASCII cache key whatever the URL holds (any
        length, any characters), and no truncation that would let two ids share a window."""
        cart_id = str(view.kwargs.get("pk") or "")
        return hashlib.sha256(cart_id.encode("utf-8", "surrogatepass")).hexdigest() if cart_id else None


class PaymentSessionIpThrottle(ClientIpThrottle):
    """Per client IP."""

    scope = "payment_session_ip"
