"""The demo storefront: server-rendered shells; everything else is the store API.

The pages hold no business logic and read no models: the browser calls ``/store/...``
with ``fetch`` (static/storefront/storefront.js), exactly as a separate storefront would.
The views only hand the page what it cannot get from the API: the Stripe publishable key,
where to load Stripe.js from, the currency exponents for formatting minor units, and the
ISO 3166-1 country codes (the page names them with the browser's ``Intl.DisplayNames``).

Signing in, the account and its orders are pages of the same kind: the shopper's bearer token
lives in the browser (see storefront.js), so these views know nothing of who is signed in and
render the same shell for everyone.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from common.addresses import country_choices
from common.money import CURRENCY_EXPONENTS, CURRENCY_SYMBOLS, DEFAULT_EXPONENT


def _page_config(**extra: Any) -> dict[str, Any]:
    return {
        "stripe_publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        "stripe_js_url": settings.STRIPE_JS_URL,
        "currency_exponents": CURRENCY_EXPONENTS,
        "default_exponent": DEFAULT_EXPONENT,
        "currency_symbols": CURRENCY_SYMBOLS,
        "checkout_enabled": settings.CHECKOUT_ENABLED,
        "country_codes": [code for code, _ in country_choices()],
        **extra,
    }


@require_GET
def storefront_index(request: HttpRequest) -> HttpResponse:
    """Products of a region -> cart -> address -> shipping -> card -> order."""
    config = _page_config()
    return render(request, "storefront/index.html", {"config": config, "stripe_js_url": settings.STRIPE_JS_URL})


@require_GET
def storefront_order(request: HttpRequest, order_id: str) -> HttpResponse:
    """The confirmation page; the order itself is fetched from ``GET /store/orders/{id}``."""
    return render(
        request, "storefront/order.html", {"config": _page_config(order_id=order_id, order_view="confirmation")}
    )


@require_GET
def storefront_account_order(request: HttpRequest, order_id: str) -> HttpResponse:
    """One order of the signed-in shopper's history (the same page, reached from the account)."""
    return render(request, "storefront/order.html", {"config": _page_config(order_id=order_id, order_view="account")})


@require_GET
def storefront_account(request: HttpRequest) -> HttpResponse:
    """Profile, order history and saved cards, from ``/store/customers/me...``."""
    return render(request, "storefront/account.html", {"config": _page_config()})


@require_GET
def storefront_sign_in(request: HttpRequest) -> HttpResponse:
    """``POST /store/auth/token``; the token is kept by the page."""
    return render(request, "storefront/sign_in.html", {"config": _page_config()})


@require_GET
def storefront_register(request: HttpRequest) -> HttpResponse:
    """``POST /store/customers``, then signs in."""
    return render(request, "storefront/register.html", {"config": _page_config()})
