from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions

from customers import selectors


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <token>``; a missing header means a guest."""

    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header.")
        try:
            raw = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        user = selectors.user_for_token(raw=raw)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return user, raw

    def authenticate_header(self, request: Any) -> str:
        return self.keyword
