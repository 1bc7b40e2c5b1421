"""The storefront's server-rendered pages (no database, no Stripe call: these tests have no database access)."""

from __future__ import annotations

import json
import re

import pytest


def _config(html: str) -> dict:
    match = re.search(r'<script id="storefront-config" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the page carries its configuration as JSON"
    return json.loads(match.group(1))


def test_storefront_index_passes_stripe_settings_to_the_page(client, settings):
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_page"
    settings.STRIPE_JS_URL = "http://127.0.0.1:8420/js.stripe.com/v3/"

    response = client.get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert '<script src="http://127.0.0.1:8420/js.stripe.com/v3/"></script>' in html
    config = _config(html)
    assert config["stripe_publishable_key"] == "pk_test_page"
    assert config["currency_exponents"]["jpy"] == 0
    assert config["currency_exponents"]["kwd"] == 3
    assert config["default_exponent"] == 2
    assert "sk_" not in html  # never the secret key


def test_storefront_index_escapes_the_stripe_js_url(client, settings):
    settings.STRIPE_JS_URL = 'https://js.stripe.com/v3/"><script>alert(1)</script>'
    html = client.get("/").content.decode()
    assert "<script>alert(1)</script>" not in html


def test_storefront_order_page_renders_for_any_id(client):
    response = client.get("/orders/order_01abc")
    assert response.status_code == 200
    assert _config(response.content.decode())["order_id"] == "order_01abc"


@pytest.mark.parametrize("path", ["/", "/orders/order_01abc"])
def test_storefront_pages_refuse_post(client, path):
    assert client.post(path).status_code == 405


@pytest.mark.parametrize(
    ("path", "script"),
    [
        ("/account", "Storefront.startAccount()"),
        ("/account/sign-in", "Storefront.startSignIn()"),
        ("/account/register", "Storefront.startRegister()"),
        ("/account/orders/order_01abc", "Storefront.startOrderPage()"),
    ],
)
def test_storefront_account_pages_are_shells_with_the_header(client, path, script):
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert script in html
    assert 'id="nav-sign-in"' in html and 'id="nav-sign-out"' in html  # the header, on every page
    assert "Storefront.startHeader()" in html


def test_storefront_account_order_page_is_the_order_page_seen_from_the_account(client):
    config = _config(client.get("/account/orders/order_01abc").content.decode())
    assert (config["order_id"], config["order_view"]) == ("order_01abc", "account")
    assert _config(client.get("/orders/order_01abc").content.decode())["order_view"] == "confirmation"


def test_storefront_pages_carry_the_country_codes_not_names(client):
    config = _config(client.get("/").content.decode())
    assert {"US", "DE", "JP"} <= set(config["country_codes"])
    assert all(len(code) == 2 and code.isupper() for code in config["country_codes"])


@pytest.mark.parametrize("path", ["/account", "/account/sign-in", "/account/register", "/account/orders/order_01abc"])
def test_storefront_account_pages_refuse_post(client, path):
    assert client.post(path).status_code == 405
