"""Throttles for registration and login: per client IP, and per email for login (password guessing).

On a cache outage both count in the process's fallback (common.throttling), never a 500.
"""

from __future__ import annotations

import hashlib
from typing import Any

from common.throttling import ClientIpThrottle, FixedWindowThrottle


class AuthIpThrottle(ClientIpThrottle):
    """Registrations and token requests per client IP."""

    scope = "auth"


class TokenEmailThrottle(FixedWindowThrottle):
    """Failed token requests per email, from any number of addresses: caps password guessing on
    one account, while a customer who logs in successfully is never held back. The view records
    each failure (``record_failure``); a request is refused once the window holds the limit."""

    scope = "auth_email"

    def allow_request(self, request: Any, view: Any) -> bool:
        window = self._window(request, view)
        if window is None:
            return True
        key, now, index = window
        return self._verdict(count=self._get(key) + 1, now=now, index=index)

    def record_failure(self, request: Any, view: Any) -> None:
        window = self._window(request, view)
        if window is not None:
            self._incr(window[0])

    def ident(self, request: Any, view: Any) -> str | None:
        """SHA-256 of the normalized email: a fixed-length ASCII cache key whatever the client sent
        (any length, any characters), and no customer's email in Redis."""
        email = request.data.get("email") if isinstance(request.data, dict) else None
        if not isinstance(email, str) or not email.strip():
            return None  # the serializer answers 400 for it
        return hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()
