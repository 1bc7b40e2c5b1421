"""Fixed-window throttles on the default cache, for the store API's abuse limits.

``cache.add`` + ``cache.incr`` are atomic on Redis (and on the local-memory cache), so parallel
requests cannot slip past the limit the way DRF's read-modify-write request history can. Rates
come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope]``, read on every request. A refused
request becomes ``429 rate_limited`` with ``Retry-After`` (common.errors).
"""

from __future__ import annotations

import math
from typing import Any

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class FixedWindowThrottle(SimpleRateThrottle):
    """Subclasses set ``scope`` and ``ident`` (``None`` = not throttled)."""

    scope: str

    def __init__(self) -> None:  # rates are read per request (settings may change in tests)
        self.rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self._wait: float | None = None

    def ident(self, request: Any, view: Any) -> str | None:
        raise NotImplementedError

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        ident = self.ident(request, view)
        if not ident:
            return None
        return f"throttle:{self.scope}:{ident}"

    def allow_request(self, request: Any, view: Any) -> bool:
        window = self._window(request, view)
        if window is None:
            return True
        key, now, index = window
        return self._verdict(count=self._incr(key), now=now, index=index)

    def _window(self, request: Any, view: Any) -> tuple[str, float, int] | None:
        """(counter key of the current window, now, window number), or None when not throttled."""
        if self.rate is None:
            return None
        base = self.get_cache_key(request, view)
        if base is None:
            return None
        now = self.timer()
        index = int(now // self.duration)
        return f"{base}:{index}", now, index

    def _incr(self, key: str) -> int:
        self.cache.add(key, 0, timeout=self.duration + 1)
        try:
            return self.cache.incr(key)
        except ValueError:  # evicted between add and incr
            self.cache.add(key, 1, timeout=self.duration + 1)
            return 1

    def _verdict(self, *, count: int, now: float, index: int) -> bool:
        if count <= self.num_requests:
            return True
        self._wait = (index + 1) * self.duration - now
        return False

    def wait(self) -> float | None:
        return None if self._wait is None else float(max(math.ceil(self._wait), 1))


class ClientIpThrottle(FixedWindowThrottle):
    """Keyed on the client IP (``NUM_PROXIES`` decides which X-Forwarded-For entry is the client)."""

    def ident(self, request: Any, view: Any) -> str | None:
        return self.get_ident(request)
