"""The storefront's account pages in a real browser (issue 11 item 4).

Register, buy keeping the card, see the order and the card on the account page, sign out and
in again, buy with the saved card, remove it; an order staff captured, shipped and partly
refunded shows its tracking number and refund; another shopper's order is not shown.

Saving a card goes through Stripe.js ``confirmCardPayment(client_secret, {payment_method:
{card}})``. localstripe's fake Stripe.js plays the bank's page but ignores the card element,
so ``_stripe_confirms_the_typed_card`` plays Stripe's part of that call: it sets the card the
shopper typed on the PaymentIntent and confirms it (as ``tests.helpers.confirm_card`` does for
the API tests), and answers the page with the confirmed PaymentIntent.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.factories import UserFactory
from tests.helpers import PASSWORD, VISA, confirm_card

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EMAIL = "grace@example.com"
NEW_PASSWORD = "loom-and-weft-Pw7"
TRACKING_URL = "https://www.ups.com/track?tracknum=1Z999AA10123456784"


def _orders() -> list[dict[str, Any]]:
    from orders.models import Order

    return list(
        Order.objects.order_by("display_id").values("id", "display_id", "customer__email", "total", "payment_intent_id")
    )


def _stripe_confirms_the_typed_card(page: Any, localstripe: Any, number: str) -> list[str]:
    """Route the fake Stripe.js's confirm call: the typed card is set on the intent and confirmed."""
    confirmed: list[str] = []

    def handle(route: Any) -> None:
        intent_id = re.search(r"/v1/payment_intents/(pi_\w+)/_authenticate", route.request.url).group(1)
        intent = confirm_card(localstripe, intent_id, number)
        confirmed.append(intent_id)
        route.fulfill(
            status=200,
            content_type="application/json",
            headers={"Access-Control-Allow-Origin": "*"},
            body=json.dumps(intent),
        )

    page.route("**/v1/payment_intents/*/_authenticate*", handle)
    return confirmed


def _header(page: Any) -> str:
    page.wait_for_selector(".account-nav:not([data-state=loading])")
    return page.locator(".account-nav").inner_text()


def _sign_in(storefront: Any, page: Any, email: str, password: str) -> None:
    page.get_by_role("link", name="Sign in").click()
    page.wait_for_url("**/account/sign-in?next=*")
    storefront.idle()
    form = page.locator("#sign-in-form")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password").fill(password)
    form.get_by_role("button", name="Sign in").click()


def _ready_to_pay(storefront: Any, page: Any, *, email: str, product: str = "Washed Linen") -> None:
    storefront.open("United States (USD)")
    storefront.add(product, 1)
    # signed in: the email is prefilled; the country select names countries
    assert page.locator("#address-form").get_by_label("Email").input_value() == email
    country = page.locator("#address-form select[name='shipping_address.country_code']")
    assert country.locator("option:checked").inner_text() == "United States"
    page.locator("#address-form").get_by_label("State / province (optional)").first.fill("IL")
    storefront.fill_address(email=email)
    storefront.choose_shipping("Standard")


def test_storefront_register_save_a_card_sign_out_in_pay_with_it_and_remove_it(storefront, page, localstripe):
    from payments import gateway

    # Register (the header says "Sign in" until then).
    page.goto("/account/register")
    storefront.idle()
    assert "Sign in" in _header(page)
    form = page.locator("#register-form")
    form.get_by_label("Email").fill(EMAIL)
    form.get_by_label("Password (8 characters or more)").fill(NEW_PASSWORD)
    form.get_by_label("First name (optional)").fill("Grace")
    form.get_by_label("Last name (optional)").fill("Hopper")
    storefront.shot("register")
    form.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/account")
    storefront.idle()
    assert EMAIL in _header(page) and "Account" in _header(page) and "Sign out" in _header(page)
    assert page.locator("#profile-name").inner_text() == "Grace Hopper"
    assert page.locator("#orders-empty").is_visible() and page.locator("#cards-empty").is_visible()

    # Buy and keep the card.
    _ready_to_pay(storefront, page, email=EMAIL)
    assert page.locator("#saved-cards").is_hidden()  # no saved card yet
    page.get_by_label("Save this card for next time").check()
    storefront.fill_card(VISA)
    confirmed = _stripe_confirms_the_typed_card(page, localstripe, VISA)
    storefront.shot("checkout-save-card")
    storefront.pay()
    page.get_by_role("button", name="Complete authentication").click()  # the fake Stripe.js's modal
    first = storefront.wait_for_order_page()
    page.unroute("**/v1/payment_intents/*/_authenticate*")
    [row] = _orders()
    assert confirmed == [row["payment_intent_id"]]
    assert row["customer__email"] == EMAIL  # the cart was created with the token
    assert first["payment_status"] == "authorized"
    assert "IL" in page.locator("#order-address").inner_text()  # the province is shown
    assert "United States" in page.locator("#order-address").inner_text()

    # The account shows the order and the saved card.
    page.get_by_role("link", name="Account").click()
    page.wait_for_url("**/account")
    storefront.idle()
    order_link = page.get_by_role("link", name=f"Order #{row['display_id']}")
    expect(order_link).to_be_visible()
    assert "$" in page.locator(f"#orders tr[data-order='{row['id']}']").inner_text()
    card = page.locator("#cards li")
    expect(card).to_have_count(1)
    assert "Visa •••• 4242" in card.inner_text() and "12/2034" in card.inner_text()
    storefront.shot("account")

    # Sign out, sign in again.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/$"))
    storefront.idle()
    assert "Sign in" in _header(page) and EMAIL not in _header(page)
    _sign_in(storefront, page, EMAIL, "wrong-password-1")
    storefront.wait_for_error()
    assert "Wrong email or password" in page.locator("#message").inner_text()
    page.locator("#sign-in-form").get_by_label("Password").fill(NEW_PASSWORD)
    storefront.shot("sign-in")
    page.locator("#sign-in-form").get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/$"))  # back where the shopper was
    storefront.idle()
    assert EMAIL in _header(page)

    # Buy again with the saved card: confirmed by the server, no card typed.
    _ready_to_pay(storefront, page, email=EMAIL, product="Organic Cotton Poplin")
    saved = page.locator("#saved-cards")
    expect(saved).to_be_visible()
    saved_radio = saved.get_by_label(re.compile(r"Visa •••• 4242"))
    expect(saved_radio).to_be_checked()
    expect(page.locator("#new-card")).to_be_hidden()
    storefront.shot("checkout-saved-card")
    storefront.pay()
    second = storefront.wait_for_order_page()
    assert second["payment_status"] == "authorized"
    rows = _orders()
    assert len(rows) == 2
    [method] = gateway.payment_method_list(
        customer=gateway.payment_intent_retrieve(id=rows[1]["payment_intent_id"])["customer"]
    )
    assert gateway.payment_intent_retrieve(id=rows[1]["payment_intent_id"])["payment_method"] == method["id"]

    # The order detail, from the account.
    page.get_by_role("link", name="Account").click()
    page.wait_for_url("**/account")
    storefront.idle()
    expect(page.locator("#orders tbody tr")).to_have_count(2)
    page.get_by_role("link", name=f"Order #{rows[1]['display_id']}").click()
    page.wait_for_url(f"**/account/orders/{rows[1]['id']}")
    storefront.idle()
    assert page.locator("#order-title").inner_text() == f"Order #{rows[1]['display_id']}"
    assert "Organic Cotton Poplin" in page.locator("#order-lines").inner_text()

    # Remove the card.
    page.get_by_role("link", name="Back to your account").click()
    page.wait_for_url("**/account")
    storefront.idle()
    page.get_by_role("button", name="Remove Visa •••• 4242").click()
    page.wait_for_selector("#message[data-kind=info]")
    storefront.idle()
    expect(page.locator("#cards li")).to_have_count(0)
    assert page.locator("#cards-empty").is_visible()
    assert (
        gateway.payment_method_list(
            customer=gateway.payment_intent_retrieve(id=rows[1]["payment_intent_id"])["customer"]
        )
        == []
    )
    storefront.shot("card-removed")


def test_storefront_order_detail_shows_tracking_and_refund_and_hides_other_shoppers_orders(storefront, page):
    from orders import fulfillment
    from orders import services as order_services

    shopper = UserFactory(email="ada@example.com")
    page.goto("/")
    storefront.idle()
    _sign_in(storefront, page, shopper.email, PASSWORD)
    page.wait_for_url(re.compile(r".*/$"))
    storefront.idle()
    _ready_to_pay(storefront, page, email=shopper.email)
    storefront.fill_card(VISA)  # a new card, not kept
    storefront.pay()
    storefront.wait_for_order_page()
    [row] = _orders()

    # Staff capture, pack, ship with a tracking number and refund part of it.
    order_services.order_payment_capture(order_id=row["id"])
    fulfillment.order_fulfil(order_id=row["id"])
    fulfillment.order_ship(
        order_id=row["id"], carrier="UPS", tracking_number="1Z999AA10123456784", tracking_url=TRACKING_URL
    )
    order_services.order_payment_refund(order_id=row["id"], amount=500, reason="A flaw in the weave")

    page.goto(f"/account/orders/{row['id']}")
    storefront.idle()
    page.wait_for_selector("#order-details:not([hidden])")
    shipments = page.locator("#order-shipments")
    assert "UPS" in shipments.inner_text() and "1Z999AA10123456784" in shipments.inner_text()
    tracking = shipments.get_by_role("link", name="1Z999AA10123456784")
    assert tracking.get_attribute("href") == TRACKING_URL  # a link for the shopper to follow, nothing loaded
    refund = page.locator("#order-refunds li")
    expect(refund).to_have_count(1)
    assert "$5.00" in refund.inner_text() and "refunded on" in refund.inner_text()
    assert page.locator("#order-fulfillment-status").get_attribute("data-status") == "shipped"
    assert page.locator("#order-payment-status").get_attribute("data-status") == "partially_refunded"
    storefront.shot("order-detail-tracking-refund")

    # Another shopper's order: the API answers 404 for this shopper, and the page says so.
    other = UserFactory(email="bob@example.com")
    from tests.factories.orders import OrderFactory

    foreign = OrderFactory(customer=other, email=other.email)
    status = page.evaluate(
        """async (id) => (await fetch('/store/orders/' + id, {
             headers: {Authorization: 'Bearer ' + localStorage.getItem('storefront.token')}})).status""",
        foreign.id,
    )
    assert status == 404
    page.goto(f"/account/orders/{foreign.id}")
    page.wait_for_selector("#message[data-kind=error]")
    assert "could not find this order in your account" in page.locator("#message").inner_text()
    assert page.locator("#order-details").is_hidden()
    assert foreign.email not in page.content()


def test_storefront_account_page_asks_a_guest_to_sign_in(page):
    page.goto("/account")
    page.wait_for_url("**/account/sign-in?next=%2Faccount")
    page.wait_for_selector("body[data-ready=true]")
    assert page.get_by_role("heading", name="Sign in").is_visible()
