"""Throttles for registration and login: per client IP, and per email for login (password guessing)."""

from __future__ import annotations

from typing import Any

from common.throttling import FixedWindowThrottle


class AuthIpThrottle(FixedWindowThrottle):
    """Registrations and token requests per client IP (``NUM_PROXIES`` decides which
    X-Forwarded-For entry is the client)."""

    scope = "auth"

    def ident(self, request: Any, view: Any) -> str | None:
        return self.get_ident(request)


class TokenEmailThrottle(FixedWindowThrottle):
    """Token requests per email, from any number of addresses: caps password guessing on one account."""

    scope = "auth_email"

    def ident(self, request: Any, view: Any) -> str | None:
        email = request.data.get("email") if isinstance(request.data, dict) else None
        if not isinstance(email, str) or not email.strip():
            return None  # the serializer answers 400 for it
        return email.strip().lower()[:254]
