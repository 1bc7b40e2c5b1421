"""Table-driven: malformed requests across the store API all get a 4xx in the API.md error
shape -- never a 500, never an HTML page, never a hand-made body."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client

from tests.factories import ShippingOptionFactory, UserFactory, VariantFactory
from tests.helpers import ADDRESS_US, auth_limit

pytestmark = pytest.mark.django_db

ERROR_TYPES = {
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "conflict_error",
    "payment_error",
    "rate_limit_error",
    "api_error",
}


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    status: int
    code: str
    body: Any = None  # a dict/list is sent as JSON; bytes/str are sent raw
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    param: Any = ...  # ... = not checked


def _items(*quantities: Any) -> list[dict[str, Any]]:
    return [{"variant_id": "{variant}", "quantity": q} for q in quantities]


CASES = [
    # --- malformed bodies -------------------------------------------------------------------
    Case("bad-json", "post", "/store/carts", 400, "malformed_json", body=b'{"region_id": '),
    Case("bad-json-trailing-comma", "post", "/store/carts", 400, "malformed_json", body=b'{"region_id": "x",}'),
    Case("json-nan", "post", "/store/carts", 400, "malformed_json", body=b'{"region_id": NaN}'),
    Case("json-invalid-utf8", "post", "/store/carts", 400, "malformed_json", body=b'{"region_id": "\xff\xfe"}'),
    Case("json-lone-surrogate", "post", "/store/carts", 400, "malformed_json", body=b'{"region_id": "\\ud800"}'),
    Case(
        "json-surrogate-in-address",
        "post",
        "/store/carts/{cart}",
        400,
        "malformed_json",
        body=json.dumps({"shipping_address": {**ADDRESS_US, "city": "\ud83d"}}).encode(),
    ),
    Case("json-deeply-nested", "post", "/store/carts", 400, "malformed_json", body=b"[" * 50_000 + b"]" * 50_000),
    Case(
        "json-huge-int-literal",
        "post",
        "/store/carts/{cart}/line-items",
        400,
        "malformed_json",
        body=b'{"variant_id": "x", "quantity": 1' + b"0" * 5000 + b"}",
    ),
    Case("json-array-body", "post", "/store/carts", 400, "validation_error", body=[{"region_id": "x"}]),
    Case("json-string-body", "post", "/store/carts", 400, "validation_error", body=b'"reg_1"'),
    Case("json-null-body", "post", "/store/carts", 400, "validation_error", body=b"null"),
    Case("empty-object", "post", "/store/carts", 400, "validation_error", body={}, param="region_id"),
    Case("empty-body", "post", "/store/carts", 400, "validation_error", body=b"", param="region_id"),
    # --- wrong content type / oversized -----------------------------------------------------
    Case(
        "text-plain",
        "post",
        "/store/carts",
        415,
        "unsupported_media_type",
        body=b"region_id=x",
        content_type="text/plain",
    ),
    Case(
        "form-encoded",
        "post",
        "/store/carts",
        415,
        "unsupported_media_type",
        body=b"region_id=x",
        content_type="application/x-www-form-urlencoded",
    ),
    Case(
        "multipart",
        "post",
        "/store/customers",
        415,
        "unsupported_media_type",
        body=b"--x--",
        content_type="multipart/form-data; boundary=x",
    ),
    Case(
        "oversized-body",
        "post",
        "/store/carts",
        413,
        "request_too_large",
        body={"region_id": "{region}", "email": "a" * 300_000},
    ),
    # --- wrong types ------------------------------------------------------------------------
    Case("region-id-int", "post", "/store/carts", 400, "validation_error", body={"region_id": 123}, param="region_id"),
    Case(
        "region-id-null", "post", "/store/carts", 400, "validation_error", body={"region_id": None}, param="region_id"
    ),
    Case(
        "region-id-object",
        "post",
        "/store/carts",
        400,
        "validation_error",
        body={"region_id": {"id": "x"}},
        param="region_id",
    ),
    Case(
        "region-id-too-long",
        "post",
        "/store/carts",
        400,
        "validation_error",
        body={"region_id": "r" * 41},
        param="region_id",
    ),
    Case(
        "region-id-nul",
        "post",
        "/store/carts",
        400,
        "validation_error",
        body={"region_id": "reg_\x00"},
        param="region_id",
    ),
    Case(
        "email-invalid",
        "post",
        "/store/carts",
        400,
        "validation_error",
        body={"region_id": "{region}", "email": "nope"},
        param="email",
    ),
    Case(
        "email-too-long",
        "post",
        "/store/carts/{cart}",
        400,
        "validation_error",
        body={"email": "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + ".example.com"},
        param="email",
    ),
    Case("email-int", "post", "/store/carts/{cart}", 400, "validation_error", body={"email": 5}, param="email"),
    Case(
        "items-string",
        "post",
        "/store/carts",
        400,
        "validation_error",
        body={"region_id": "{region}", "items": "abc"},
        param="items",
    ),
    Case(
        "items-too-many",
        "post",
        "/store/carts",
        400,
        "validation_error",
        body={"region_id": "{region}", "items": _items(*[1] * 201)},
        param="items",
    ),
    Case(
        "quantity-string",
        "post",
        "/store/carts",
        400,
        "validation_error",
        body={"region_id": "{region}", "items": _items("2")},
        param="items[0].quantity",
    ),
    Case(
        "quantity-float",
        "post",
        "/store/carts",
        400,
        "validation_error",
        body={"region_id": "{region}", "items": _items(1.5)},
        param="items[0].quantity",
    ),
    Case(
        "quantity-bool",
        "post",
        "/store/carts",
        400,
        "validation_error",
        body={"region_id": "{region}", "items": _items(True)},
        param="items[0].quantity",
    ),
    Case(
        "quantity-null",
        "post",
        "/store/carts",
        400,
        "validation_error",
        body={"region_id": "{region}", "items": _items(None)},
        param="items[0].quantity",
    ),
    Case(
        "quantity-zero-in-create",
        "post",
        "/store/carts",
        400,
        "validation_error",
        body={"region_id": "{region}", "items": _items(1, 0)},
        param="items[1].quantity",
    ),
    Case(
        "quantity-negative-in-create",
        "post",
        "/store/carts",
        400,
        "validation_error",
        body={"region_id": "{region}", "items": _items(-1)},
        param="items[0].quantity",
    ),
    Case(
        "quantity-huge-in-create",
        "post",
        "/store/carts",
        400,
        "validation_error",
        body={"region_id": "{region}", "items": _items(10**20)},
        param="items[0].quantity",
    ),
    Case(
        "quantity-zero",
        "post",
        "/store/carts/{cart}/line-items",
        400,
        "validation_error",
        body={"variant_id": "{variant}", "quantity": 0},
        param="quantity",
    ),
    Case(
        "quantity-negative",
        "post",
        "/store/carts/{cart}/line-items",
        400,
        "validation_error",
        body={"variant_id": "{variant}", "quantity": -5},
        param="quantity",
    ),
    Case(
        "quantity-over-max",
        "post",
        "/store/carts/{cart}/line-items",
        400,
        "validation_error",
        body={"variant_id": "{variant}", "quantity": 10_001},
        param="quantity",
    ),
    Case(
        "quantity-missing",
        "post",
        "/store/carts/{cart}/line-items",
        400,
        "validation_error",
        body={"variant_id": "{variant}"},
        param="quantity",
    ),
    Case(
        "variant-id-list",
        "post",
        "/store/carts/{cart}/line-items",
        400,
        "validation_error",
        body={"variant_id": ["x"], "quantity": 1},
        param="variant_id",
    ),
    Case(
        "line-update-negative",
        "post",
        "/store/carts/{cart}/line-items/{item}",
        400,
        "validation_error",
        body={"quantity": -1},
        param="quantity",
    ),
    Case(
        "line-update-string",
        "post",
        "/store/carts/{cart}/line-items/{item}",
        400,
        "validation_error",
        body={"quantity": "many"},
        param="quantity",
    ),
    Case(
        "shipping-option-list",
        "post",
        "/store/carts/{cart}/shipping-methods",
        400,
        "validation_error",
        body={"option_id": ["a"]},
        param="option_id",
    ),
    Case(
        "address-string",
        "post",
        "/store/carts/{cart}",
        400,
        "validation_error",
        body={"shipping_address": "1 Loom St"},
        param="shipping_address",
    ),
    Case(
        "address-missing-city",
        "post",
        "/store/carts/{cart}",
        400,
        "validation_error",
        body={"shipping_address": {k: v for k, v in ADDRESS_US.items() if k != "city"}},
        param="shipping_address.city",
    ),
    Case(
        "address-country-lowercase",
        "post",
        "/store/carts/{cart}",
        400,
        "validation_error",
        body={"billing_address": {**ADDRESS_US, "country_code": "us"}},
        param="billing_address.country_code",
    ),
    Case(
        "address-country-not-in-region",
        "post",
        "/store/carts/{cart}",
        400,
        "country_not_in_region",
        body={"shipping_address": {**ADDRESS_US, "country_code": "JP"}},
        param="shipping_address.country_code",
    ),
    Case(
        "address-unicode-junk",
        "post",
        "/store/carts/{cart}",
        400,
        "validation_error",
        body={"shipping_address": {**ADDRESS_US, "country_code": "\U0001f9f5\u202e"}},
        param="shipping_address.country_code",
    ),
    Case(
        "register-bad-email",
        "post",
        "/store/customers",
        400,
        "validation_error",
        body={"email": "x", "password": "correct-horse-battery"},
        param="email",
    ),
    Case(
        "register-long-password",
        "post",
        "/store/customers",
        400,
        "validation_error",
        body={"email": "a@example.com", "password": "p" * 129},
        param="password",
    ),
    Case(
        "token-null-email",
        "post",
        "/store/auth/token",
        400,
        "validation_error",
        body={"email": None, "password": "x"},
        param="email",
    ),
    Case("shipping-options-no-cart", "get", "/store/shipping-options", 400, "validation_error", param="cart_id"),
    Case(
        "shipping-options-nul-cart",
        "get",
        "/store/shipping-options?cart_id=%00",
        400,
        "validation_error",
        param="cart_id",
    ),
    # --- unknown ids --------------------------------------------------------------------------
    Case("unknown-region", "post", "/store/carts", 404, "not_found", body={"region_id": "reg_nope"}, param="region_id"),
    Case(
        "unicode-region",
        "post",
        "/store/carts",
        404,
        "not_found",
        body={"region_id": "\U0001f9f5\U0001f4a5\u0645\u0631\u062d\u0628\u0627"},
        param="region_id",
    ),
    Case(
        "unknown-variant-in-create",
        "post",
        "/store/carts",
        404,
        "not_found",
        body={"region_id": "{region}", "items": [{"variant_id": "variant_nope", "quantity": 1}]},
        param="variant_id",
    ),
    Case("unknown-cart", "get", "/store/carts/cart_nope", 404, "not_found"),
    Case(
        "unknown-cart-write",
        "post",
        "/store/carts/cart_nope/line-items",
        404,
        "not_found",
        body={"variant_id": "{variant}", "quantity": 1},
    ),
    Case("unicode-cart-id", "get", "/store/carts/%F0%9F%A7%B5%E2%80%AE", 404, "not_found"),
    Case("nul-cart-id", "get", "/store/carts/cart_%00", 404, "not_found"),
    Case(
        "nul-cart-id-write",
        "post",
        "/store/carts/%00/line-items",
        404,
        "not_found",
        body={"variant_id": "{variant}", "quantity": 1},
    ),
    Case("nul-item-id", "delete", "/store/carts/{cart}/line-items/item_%00", 404, "not_found"),
    Case("nul-product-id", "get", "/store/products/%00", 404, "not_found"),
    Case("invalid-utf8-path", "get", "/store/carts/%FF%FE", 404, "not_found"),
    Case("very-long-cart-id", "get", "/store/carts/" + "c" * 4000, 404, "not_found"),
    Case(
        "unknown-variant",
        "post",
        "/store/carts/{cart}/line-items",
        404,
        "not_found",
        body={"variant_id": "variant_nope", "quantity": 1},
        param="variant_id",
    ),
    Case(
        "unknown-item",
        "post",
        "/store/carts/{cart}/line-items/item_nope",
        404,
        "not_found",
        body={"quantity": 1},
        param="item_id",
    ),
    Case(
        "unknown-item-delete", "delete", "/store/carts/{cart}/line-items/item_nope", 404, "not_found", param="item_id"
    ),
    Case(
        "unknown-shipping-option",
        "post",
        "/store/carts/{cart}/shipping-methods",
        404,
        "not_found",
        body={"option_id": "so_nope"},
        param="option_id",
    ),
    Case("unknown-product", "get", "/store/products/prod_nope", 404, "not_found"),
    Case("unknown-products-region", "get", "/store/products?region_id=%FF", 404, "not_found", param="region_id"),
    Case("shipping-options-unknown-cart", "get", "/store/shipping-options?cart_id=cart_nope", 404, "not_found"),
    # --- unknown paths, wrong methods ----------------------------------------------------------
    Case("unknown-store-path", "get", "/store/nope", 404, "not_found"),
    Case("unknown-root-path", "get", "/nope", 404, "not_found"),
    Case("unknown-nested-path", "post", "/store/carts/{cart}/coupons", 404, "not_found", body={}),
    Case("put-cart", "put", "/store/carts/{cart}", 405, "method_not_allowed", body={}),
    Case("patch-cart", "patch", "/store/carts/{cart}", 405, "method_not_allowed", body={}),
    Case("delete-cart", "delete", "/store/carts/{cart}", 405, "method_not_allowed"),
    Case("get-carts", "get", "/store/carts", 405, "method_not_allowed"),
    Case("post-regions", "post", "/store/regions", 405, "method_not_allowed", body={}),
    Case("get-token", "get", "/store/auth/token", 405, "method_not_allowed"),
    Case("get-line-item", "get", "/store/carts/{cart}/line-items/{item}", 405, "method_not_allowed"),
    # --- authentication --------------------------------------------------------------------------
    Case("bad-token", "get", "/store/regions", 401, "invalid_credentials", headers={"Authorization": "Bearer nope"}),
    Case(
        "bearer-without-token",
        "get",
        "/store/carts/{cart}",
        401,
        "invalid_credentials",
        headers={"Authorization": "Bearer"},
    ),
    Case(
        "bearer-three-parts",
        "post",
        "/store/carts",
        401,
        "invalid_credentials",
        body={"region_id": "{region}"},
        headers={"Authorization": "Bearer a b"},
    ),
    Case(
        "bearer-non-utf8",
        "get",
        "/store/regions",
        401,
        "invalid_credentials",
        headers={"Authorization": "Bearer \xff\xfe"},
    ),
    Case("me-anonymous", "get", "/store/customers/me", 401, "not_authenticated"),
    Case(
        "me-basic-auth", "get", "/store/customers/me", 401, "not_authenticated", headers={"Authorization": "Basic YTpi"}
    ),
    Case(
        "token-wrong-password",
        "post",
        "/store/auth/token",
        401,
        "invalid_credentials",
        body={"email": "{email}", "password": "wrong-password"},
    ),
    Case(
        "register-duplicate",
        "post",
        "/store/customers",
        409,
        "email_taken",
        body={"email": "{email}", "password": "correct-horse-battery"},
        param="email",
    ),
]


@pytest.fixture
def world(region_usd):
    client = Client()
    variant = VariantFactory(prices={"usd": 1000})
    ShippingOptionFactory(region=region_usd)
    cart = client.post(
        "/store/carts",
        {"region_id": region_usd.id, "items": [{"variant_id": variant.id, "quantity": 1}]},
        content_type="application/json",
    ).json()["cart"]
    user = UserFactory()
    return {
        "region": region_usd.id,
        "variant": variant.id,
        "cart": cart["id"],
        "item": cart["items"][0]["id"],
        "email": user.email,
    }


def _fill(value: Any, world: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, replacement in world.items():
            value = value.replace("{" + key + "}", replacement)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, world) for v in value]
    return value


def assert_error_shape(response: Any, status: int, code: str, param: Any = ...) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert {"type", "code", "message", "param"} <= set(error), error
    assert error["type"] in ERROR_TYPES
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert error["param"] is None or isinstance(error["param"], str)
    if param is not ...:
        assert error["param"] == param, error
    return error


def test_error_table_is_large_enough():
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_malformed_request_gets_a_4xx_in_the_error_shape(world, case):
    client = Client(raise_request_exception=False)
    body = _fill(case.body, world)
    if isinstance(body, (dict, list)):
        data: Any = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    else:
        data = body if body is not None else b""
    headers = _fill(case.headers, world)
    path = _fill(case.path, world)
    response = getattr(client, case.method)(path, data=data, content_type=case.content_type, headers=headers)
    assert response.status_code < 500
    assert_error_shape(response, case.status, case.code, case.param)


def test_auth_scope_throttled_with_retry_after(world):
    client = Client()
    for n in range(auth_limit()):  # other emails each time: the per-IP budget, not the per-email one
        client.post(
            "/store/auth/token",
            {"email": f"n{n}@example.com", "password": "wrong-password"},
            content_type="application/json",
        )
    response = client.post(
        "/store/auth/token", {"email": world["email"], "password": "x"}, content_type="application/json"
    )
    error = assert_error_shape(response, 429, "rate_limited", None)
    assert error["type"] == "rate_limit_error"
    assert int(response["Retry-After"]) >= 1
    # registration shares the scope
    response = client.post(
        "/store/customers",
        {"email": "n@example.com", "password": "correct-horse-battery"},
        content_type="application/json",
    )
    assert_error_shape(response, 429, "rate_limited")
    # other endpoints are not throttled
    assert client.get("/store/regions").status_code == 200


@pytest.mark.parametrize("path", ["/store/no-such-thing", "/store/carts/x/y/z", "/webhooks/nope", "/health/nope"])
def test_unknown_api_path_is_json_even_with_debug(db, settings, path):
    settings.DEBUG = True  # Django's own debug 404 page is HTML
    response = Client().post(path, data=b"{}", content_type="application/json")
    assert_error_shape(response, 404, "not_found")
