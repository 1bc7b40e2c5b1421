"""Throttles for payment-session creation (card-testing defence): per cart and per client IP.

Fixed windows on the default cache (common.throttling); rates ``payment_session_cart`` and
``payment_session_ip`` in ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``.
"""

from __future__ import annotations

from typing import Any

from common.throttling import ClientIpThrottle, FixedWindowThrottle


class PaymentSessionCartThrottle(FixedWindowThrottle):
    """Per cart (the ``pk`` URL argument), whoever calls."""

    scope = "payment_session_cart"

    def ident(self, request: Any, view: Any) -> str | None:
        return str(view.kwargs.get("pk") or "")[:64] or None


class PaymentSessionIpThrottle(ClientIpThrottle):
    """Per client IP."""

    scope = "payment_session_ip"
