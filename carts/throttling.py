"""Cart creation per client IP: without it one address could open carts without limit and test
cards across them (each cart has its own payment-session limit). Rate ``cart_create`` in
``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (``THROTTLE_CART_CREATE``); fixed windows on the
default cache with the per-process fallback of common.throttling.
"""

from __future__ import annotations

from common.throttling import ClientIpThrottle


class CartCreateIpThrottle(ClientIpThrottle):
    """``POST /store/carts`` per client IP."""

    scope = "cart_create"
