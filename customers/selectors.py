from __future__ import annotations

from customers.models import AuthToken, User, token_digest


def user_for_token(*, raw: str) -> User | None:
    token = AuthToken.objects.select_related("user").filter(digest=token_digest(raw)).first()
    if token is None or not token.user.is_active:
        return None
    return token.user
