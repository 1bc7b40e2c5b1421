"""The storefront in a real browser: buy, decline, 3-D Secure, staff capture (issue 7)."""

from __future__ import annotations

import io

import pytest
from django.contrib.admin.utils import quote
from django.core.management import call_command
from playwright.sync_api import expect

from tests.helpers import DECLINED_AT_CONFIRM, THREE_D_SECURE, VISA

STAFF_EMAIL = "staff@example.com"
STAFF_PASSWORD = "staff-browser-test-Pw9"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _orders() -> list[dict]:
    from orders.models import Order

    return list(Order.objects.values("id", "display_id", "total", "payment_status", "payment_intent_id"))


def _ready_to_pay(storefront, *, product: str = "Washed Linen", quantity: int = 2) -> None:
    storefront.open("United States (USD)")
    storefront.add(product, quantity)
    storefront.shot("cart")
    storefront.fill_address()
    storefront.choose_shipping("Standard")
    storefront.shot("ready-to-pay")


def test_storefront_buy_with_visa_shows_the_order(storefront, page):
    storefront.open("United States (USD)")
    storefront.add("Organic Cotton Poplin", 3)
    storefront.add("Washed Linen", 1)
    # quantities and remove, on the cart
    storefront.set_quantity("Organic Cotton Poplin / Navy", 2)
    page.get_by_role("button", name="Remove Washed Linen / Natural").click()
    storefront.idle()
    assert page.locator("#cart-lines tbody tr").count() == 1
    # 2 x $14.50
    assert page.locator("#cart-totals dd[data-total=subtotal]").inner_text() == "$29.00"
    storefront.fill_address()
    storefront.choose_shipping("Express")
    # $29.00 + $15.00 shipping + tax on both (8.75% of $44.00 = $3.85)
    assert page.locator("#cart-totals dd[data-total=total]").inner_text() == "$47.85"
    storefront.fill_card(VISA)
    storefront.shot("card")
    storefront.pay()

    order = storefront.wait_for_order_page()
    storefront.shot("confirmation")

    [row] = _orders()
    assert order["url"].endswith(f"/orders/{row['id']}")
    assert order["display_id"] == f"#{row['display_id']}"
    assert order["total"] == "$47.85"
    assert row["total"] == 4785
    assert order["payment_status"] == "authorized"
    assert "Organic Cotton Poplin / Navy" in page.locator("#order-lines").inner_text()


def test_storefront_declined_card_shows_a_message_and_places_no_order(storefront, page):
    _ready_to_pay(storefront)
    storefront.fill_card(DECLINED_AT_CONFIRM)
    storefront.pay()

    message = storefront.wait_for_error()
    storefront.shot("declined")
    assert "declined" in message.lower()
    assert "{" not in message  # words, never raw JSON
    # the shopper is at the Pay button, far below the message box: it is scrolled into view
    expect(page.locator("#message")).to_be_in_viewport()
    assert "/orders/" not in page.url
    assert _orders() == []

    # the shopper tries another card on the same cart and gets the order
    storefront.fill_card(VISA)
    storefront.pay()
    order = storefront.wait_for_order_page()
    storefront.shot("paid-after-decline")
    assert order["payment_status"] == "authorized"
    assert len(_orders()) == 1


def test_storefront_three_d_secure_order_then_staff_capture_shows_captured(
    storefront, page, chromium, shop_server, localstripe
):
    _ready_to_pay(storefront)
    storefront.fill_card(THREE_D_SECURE)
    storefront.pay()

    # localstripe's fake Stripe.js plays the bank's 3-D Secure page
    complete = page.get_by_role("button", name="Complete authentication")
    complete.wait_for()
    storefront.shot("3ds-challenge")
    complete.click()

    order = storefront.wait_for_order_page()
    storefront.shot("confirmation")
    assert order["payment_status"] == "authorized"
    [row] = _orders()
    assert order["display_id"] == f"#{row['display_id']}"

    # A staff member captures the payment in the admin (its own browser session) ...
    call_command("ensure_staff_user", "--email", STAFF_EMAIL, "--password", STAFF_PASSWORD, stdout=io.StringIO())
    staff = chromium.new_context(viewport={"width": 1280, "height": 900}, base_url=shop_server.url)
    admin = staff.new_page()
    admin.goto(f"/admin/login/?next=/admin/orders/order/{row['id']}/capture/")
    admin.locator("#id_username").fill(STAFF_EMAIL)
    admin.locator("#id_password").fill(STAFF_PASSWORD)
    admin.locator("input[type=submit]").click()
    admin.wait_for_url(f"**/admin/orders/order/{row['id']}/capture/")
    storefront.shot("admin-capture-form", of=admin)
    admin.locator("#ck-confirm").click()
    admin.wait_for_url(f"**/admin/orders/order/{quote(row['id'])}/change/")  # the admin quotes ids
    storefront.shot("admin-captured", of=admin)
    assert admin.locator("ul.messagelist li.success").count() == 1
    staff.close()

    # ... and the shopper's confirmation page shows it captured.
    page.get_by_role("button", name="Refresh").click()
    page.wait_for_selector("#order-payment-status[data-status=captured]")
    storefront.shot("captured")
    assert "captured" in page.locator("#order-payment-status").inner_text().lower()
    [row] = _orders()
    assert row["payment_status"] == "captured"
    intent = localstripe.request("GET", f"/v1/payment_intents/{row['payment_intent_id']}")
    assert intent["status"] == "succeeded"
    assert int(intent["amount"]) == row["total"]


def test_storefront_failed_three_d_secure_shows_a_message(storefront, page):
    _ready_to_pay(storefront)
    storefront.fill_card(THREE_D_SECURE)
    storefront.pay()
    page.get_by_role("button", name="Fail authentication").click()

    message = storefront.wait_for_error()
    storefront.shot("3ds-failed")
    assert "bank did not confirm the payment" in message
    assert _orders() == []
