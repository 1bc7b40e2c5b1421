"""The demo storefront: two server-rendered shells; everything else is the store API.

The pages hold no business logic and read no models: the browser calls ``/store/...``
with ``fetch`` (static/storefront/storefront.js), exactly as a separate storefront would.
The views only hand the page what it cannot get from the API: the Stripe publishable key,
where to load Stripe.js from, and the currency exponents for formatting minor units.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from common.money import CURRENCY_EXPONENTS, CURRENCY_SYMBOLS, DEFAULT_EXPONENT


def _page_config(**extra: Any) -> dict[str, Any]:
    return {
        "stripe_publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        "stripe_js_url": settings.STRIPE_JS_URL,
        "currency_exponents": CURRENCY_EXPONENTS,
        "default_exponent": DEFAULT_EXPONENT,
        "currency_symbols": CURRENCY_SYMBOLS,
        "checkout_enabled": settings.CHECKOUT_ENABLED,
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
    return render(request, "storefront/order.html", {"config": _page_config(order_id=order_id)})
