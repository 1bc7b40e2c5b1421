from __future__ import annotations

from collections.abc import Iterable

from customers.models import AuthToken, User, token_digest


def user_for_token(*, raw: str) -> User | None:
    token = AuthToken.objects.select_related("user").filter(digest=token_digest(raw)).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


def users_display_names(*, user_ids: Iterable[str]) -> dict[str, str]:
    """``{user id: "Full Name <email>"}`` (or the email alone when the name is blank), in one query.

    For the back office, which stores who acted as a user id (``cus_…``): staff and shoppers
    share the user model. Ids of users that no longer exist are absent from the result.
    """
    ids = {user_id for user_id in user_ids if user_id}
    if not ids:
        return {}
    names: dict[str, str] = {}
    for user_id, email, first_name, last_name in User.objects.filter(pk__in=ids).values_list(
        "id", "email", "first_name", "last_name"
    ):
        full_name = f"{first_name} {last_name}".strip()
        names[user_id] = f"{full_name} <{email}>" if full_name else email
    return names
