"""Storefront page behaviour that needs no payment: formatting, errors in words, cart persistence."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser]


MONEY_CASES = [
    (1450, "usd", "$14.50"),
    (5, "usd", "$0.05"),
    (123456789, "usd", "$1,234,567.89"),
    (2200, "jpy", "¥2,200"),
    (4450, "kwd", "KD 4.450"),
    (7, "kwd", "KD 0.007"),
    (-1995, "eur", "-€19.95"),
    (1000, "chf", "10.00 CHF"),
]


def test_storefront_format_money_matches_the_server(page):
    from common.money import format_money

    page.goto("/")
    page.wait_for_selector("body[data-ready=true]")
    for amount, currency, text in MONEY_CASES:
        assert format_money(amount, currency) == text
        assert page.evaluate("([a, c]) => Storefront.formatMoney(a, c)", [amount, currency]) == text


def test_storefront_shows_prices_per_region_and_keeps_the_cart_on_reload(storefront, page):
    storefront.open("Japan (JPY)")
    assert "¥2,200" in page.locator("article[data-product=cotton-poplin]").inner_text()
    storefront.add("Organic Cotton Poplin", 2)
    assert page.locator("#cart-totals dd[data-total=subtotal]").inner_text() == "¥4,400"
    assert page.locator("#cart-totals dt", has_text="Tax (included)").count() == 1

    page.reload()
    storefront.idle()
    assert page.get_by_label("Region").locator("option:checked").inner_text() == "Japan (JPY)"
    assert page.locator("#cart-lines tbody tr").count() == 1

    storefront.open("Kuwait (KWD)")  # the cart moves with the region and is repriced by the server
    assert page.locator("#cart-totals dd[data-total=subtotal]").inner_text() == "KD 8.900"
    storefront.shot("kuwait-cart")


def test_storefront_shows_api_errors_in_words(storefront, page):
    storefront.open("United States (USD)")
    storefront.add("Silk Charmeuse", 1)
    storefront.set_quantity("Silk Charmeuse / Ivory", 20000)  # above the API's maximum
    message = storefront.wait_for_error()
    assert message.startswith("Quantity:")
    assert page.get_by_label("Quantity of Silk Charmeuse / Ivory").input_value() == "1"  # what the cart holds
    assert "{" not in message

    page.locator("#address-form").get_by_label("Email").fill("not-an-email")
    page.get_by_role("button", name="Save address").click()
    message = storefront.wait_for_error()
    storefront.shot("invalid-email")
    assert message.startswith("Email:")
    assert page.locator("#address-form").get_by_label("Email").get_attribute("aria-invalid") == "true"


def test_storefront_order_page_for_an_unknown_order_says_so(page):
    page.goto("/orders/order_doesnotexist")
    page.wait_for_selector("#message[data-kind=error]")
    assert "could not find this order" in page.locator("#message").inner_text()


@pytest.mark.parametrize(
    ("locale", "region"),
    [("ja-JP", "Japan (JPY)"), ("en-US", "United States (USD)"), ("de-DE", "Europe (EUR)"), ("en", "Europe (EUR)")],
)
def test_storefront_first_visit_picks_the_region_of_the_browser_language(chromium, shop_server, locale, region):
    """No remembered region: the one that ships to the language's country, else the first by name."""
    context = chromium.new_context(locale=locale, base_url=shop_server.url)
    try:
        page = context.new_page()
        page.goto("/")
        page.wait_for_selector("body[data-ready=true]")
        assert page.get_by_label("Region").locator("option:checked").inner_text() == region
    finally:
        context.close()
