"""Customers: registration, bearer tokens, /store/customers/me."""

from __future__ import annotations

import pytest

from customers.models import AuthToken, token_digest
from tests.factories import UserFactory
from tests.helpers import PASSWORD, assert_error, auth_limit

pytestmark = pytest.mark.django_db


def _register(client, email="ada@example.com", password=PASSWORD, **extra):
    return client.post("/store/customers", {"email": email, "password": password, **extra}, format="json")


def _token(client, email, password=PASSWORD) -> str:
    response = client.post("/store/auth/token", {"email": email, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["token"]


def test_customer_register(api_client):
    response = _register(api_client, email="Ada@Example.com", first_name="Ada", last_name="Lovelace")
    assert response.status_code == 201, response.content
    customer = response.json()["customer"]
    assert set(customer) == {"id", "email", "first_name", "last_name", "date_joined"}
    assert customer["id"].startswith("cus_") and len(customer["id"]) == 30
    assert (customer["email"], customer["first_name"], customer["last_name"]) == ("ada@example.com", "Ada", "Lovelace")
    assert "password" not in response.content.decode()


def test_customer_ids_are_unguessable_and_not_sequential(api_client):
    ids = [_register(api_client, email=f"c{i}@example.com").json()["customer"]["id"] for i in range(3)]
    assert len(set(ids)) == 3
    assert all(i.startswith("cus_") and not i[4:].isdigit() for i in ids)


def test_customer_register_duplicate_email_is_409(api_client):
    assert _register(api_client).status_code == 201
    error = assert_error(_register(api_client, email="ADA@example.com"), 409, "email_taken", "email")
    assert error["type"] == "conflict_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"password": PASSWORD}, "email"),
        ({"email": "a@example.com"}, "password"),
        ({"email": "a@example.com", "password": "short"}, "password"),
        ({"email": "a@example.com", "password": "password123"}, "password"),  # too common
        ({"email": "a@example.com", "password": 12345678901}, "password"),
        ({"email": ["a@example.com"], "password": PASSWORD}, "email"),
    ],
)
def test_customer_register_validation(api_client, body, param):
    assert_error(api_client.post("/store/customers", body, format="json"), 400, "validation_error", param)


def test_token_and_me(api_client):
    _register(api_client, first_name="Ada")
    token = _token(api_client, "ADA@example.com ")
    assert AuthToken.objects.filter(digest=token_digest(token)).exists()
    assert not AuthToken.objects.filter(digest=token).exists()  # only the digest is stored
    response = api_client.get("/store/customers/me", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert response.json()["customer"]["email"] == "ada@example.com"
    assert response.json()["customer"]["first_name"] == "Ada"
    # the scheme name is case-insensitive
    assert api_client.get("/store/customers/me", HTTP_AUTHORIZATION=f"bearer {token}").status_code == 200


def test_token_wrong_password_is_401(api_client):
    user = UserFactory()
    response = api_client.post("/store/auth/token", {"email": user.email, "password": "wrong-password"}, format="json")
    error = assert_error(response, 401, "invalid_credentials", None)
    assert error["type"] == "authentication_error"


def test_token_unknown_email_is_401(api_client):
    response = api_client.post(
        "/store/auth/token", {"email": "nobody@example.com", "password": PASSWORD}, format="json"
    )
    assert_error(response, 401, "invalid_credentials")


def test_token_inactive_customer_is_401(api_client):
    user = UserFactory()
    token = _token(api_client, user.email)
    user.is_active = False
    user.save()
    assert_error(
        api_client.post("/store/auth/token", {"email": user.email, "password": PASSWORD}, format="json"),
        401,
        "invalid_credentials",
    )
    assert_error(
        api_client.get("/store/customers/me", HTTP_AUTHORIZATION=f"Bearer {token}"), 401, "invalid_credentials"
    )


def test_me_without_token_is_401(api_client):
    response = api_client.get("/store/customers/me")
    error = assert_error(response, 401, "not_authenticated", None)
    assert error["type"] == "authentication_error"
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header",
    ["Bearer not-a-real-token", "Bearer", "Bearer a b", "Bearer \u00e9t\u00e9"],
)
def test_me_with_bad_token_is_401(api_client, header):
    assert_error(api_client.get("/store/customers/me", HTTP_AUTHORIZATION=header), 401, "invalid_credentials")


def test_other_authorization_schemes_are_guests(api_client):
    # Basic auth is not ours: the request is anonymous, so /me says "not authenticated"
    assert_error(api_client.get("/store/customers/me", HTTP_AUTHORIZATION="Basic YTpi"), 401, "not_authenticated")


def test_each_login_issues_a_new_token(api_client):
    user = UserFactory()
    first, second = _token(api_client, user.email), _token(api_client, user.email)
    assert first != second
    for token in (first, second):
        assert api_client.get("/store/customers/me", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_auth_endpoints_are_throttled(api_client, settings):
    user = UserFactory()
    for n in range(auth_limit()):  # other emails each time: the per-IP budget, not the per-email one
        api_client.post("/store/auth/token", {"email": f"n{n}@example.com", "password": "wrong"}, format="json")
    response = api_client.post("/store/auth/token", {"email": user.email, "password": PASSWORD}, format="json")
    error = assert_error(response, 429, "rate_limited", None)
    assert error["type"] == "rate_limit_error"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_failed_logins_are_throttled_per_email_from_any_ip(api_client):
    user, other = UserFactory(), UserFactory()
    limit = auth_limit("auth_email")
    assert limit < auth_limit()
    for n in range(limit):  # a password-guessing run spread over many addresses
        api_client.post(
            "/store/auth/token",
            {"email": user.email, "password": "wrong"},
            format="json",
            REMOTE_ADDR=f"10.0.0.{n + 1}",
        )

    guessed = api_client.post(
        "/store/auth/token",
        {"email": f"  {user.email.upper()} ", "password": PASSWORD},
        format="json",
        REMOTE_ADDR="10.0.1.1",
    )

    assert_error(guessed, 429, "rate_limited", None)
    assert int(guessed["Retry-After"]) >= 1
    # another account, from the same addresses, is not affected
    assert (
        api_client.post("/store/auth/token", {"email": other.email, "password": PASSWORD}, format="json").status_code
        == 200
    )


def test_successful_logins_do_not_use_up_the_per_email_budget(api_client):
    user = UserFactory()
    limit = auth_limit("auth_email")
    for _ in range(limit + 2):
        assert _token(api_client, user.email)
    assert (
        api_client.post("/store/auth/token", {"email": user.email, "password": "wrong"}, format="json").status_code
        == 401
    )
