"""POST /store/carts/{id}/complete against PostgreSQL and a real localstripe."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from carts.models import Cart, CartStatus
from catalog.models import StockLevel, StockReservation
from orders.models import CheckoutIncident, Order, OrderEvent
from payments import gateway
from payments.models import LedgerEntry, PaymentSession
from tests.factories import UserFactory
from tests.helpers import ADDRESS_US, THREE_D_SECURE, confirm_card
from tests.orders.conftest import complete, make_cart, pay_cart, shop_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("currency", ["usd", "jpy", "kwd"])
def test_complete_guest_flow_totals_equal_payment_intent(api_client, localstripe, currency):
    shop = shop_for(currency)
    a, b = shop.variant(stock=5), shop.variant(stock=5, price={"usd": 999, "jpy": 333, "kwd": 2370}[currency])
    cart_id = make_cart(shop, [(a, 2), (b, 3)])
    paid = pay_cart(localstripe, cart_id)

    response = complete(api_client, cart_id, paid.payment_intent_id)

    assert response.status_code == 201, response.content
    order = response.json()["order"]
    intent = gateway.payment_intent_retrieve(id=paid.payment_intent_id)
    assert order["total"] == intent["amount"] == paid.total
    assert order["currency_code"] == intent["currency"] == currency
    assert order["amount_authorized"] == paid.total
    assert order["amount_captured"] == 0
    assert order["amount_refunded"] == 0
    assert order["status"] == "pending"
    assert order["payment_status"] == "authorized"
    assert order["fulfillment_status"] == "not_fulfilled"
    assert order["cart_id"] == cart_id
    assert order["customer_id"] is None
    assert order["id"].startswith("order_")
    assert isinstance(order["display_id"], int)
    # the snapshot adds up to the minor unit
    assert (
        sum(line["total"] for line in order["items"])
        + order["shipping_total"]
        + (0 if shop.region.tax_inclusive else order["tax_total"] - sum(line["tax_total"] for line in order["items"]))
        == order["total"]
    )
    assert order["subtotal"] == sum(line["subtotal"] for line in order["items"])
    assert [(line["variant_id"], line["quantity"]) for line in order["items"]] == [(a.id, 2), (b.id, 3)]
    assert order["shipping_method"]["option_id"] == shop.shipping_option.id
    assert order["shipping_address"]["country_code"] == shop.region.countries[0]
    assert set(order) == {
        "id", "display_id", "cart_id", "status", "payment_status", "fulfillment_status", "email", "customer_id",
        "currency_code", "items", "shipping_address", "billing_address", "shipping_method", "subtotal",
        "shipping_total", "tax_total", "total", "amount_authorized", "amount_captured", "amount_refunded",
        "shipments", "refunds", "created_at",
    }  # fmt: skip
    assert (order["shipments"], order["refunds"]) == ([], [])
    # stock consumed once, the reservation gone, the cart completed, the session marked
    assert StockLevel.objects.get(variant=a).on_hand == 3
    assert StockLevel.objects.get(variant=b).on_hand == 2
    assert not StockReservation.objects.filter(cart_id=cart_id).exists()
    cart = Cart.objects.get(pk=cart_id)
    assert cart.status == CartStatus.COMPLETED and cart.completed_at is not None
    assert PaymentSession.objects.get(payment_intent_id=paid.payment_intent_id).status == "authorized"
    ledger = list(LedgerEntry.objects.filter(payment_intent_id=paid.payment_intent_id).values_list("kind", "amount"))
    assert ledger == [("authorization", paid.total)]
    # the cart API shows it completed
    assert api_client.get(f"/store/carts/{cart_id}").json()["cart"]["status"] == "completed"


def test_complete_customer_flow(api_client, localstripe, shop, customer_token):
    user, token = customer_token
    variant = shop.variant(stock=4)
    cart_id = make_cart(shop, [(variant, 1)], user_id=user.id, email=user.email)
    paid = pay_cart(localstripe, cart_id)

    response = complete(api_client, cart_id, paid.payment_intent_id, token=token)

    assert response.status_code == 201, response.content
    order = response.json()["order"]
    assert order["customer_id"] == user.id
    assert order["email"] == user.email
    assert order["total"] == paid.total
    # visible to its customer, in their list, and to nobody else
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert api_client.get(f"/store/orders/{order['id']}", **auth).json()["order"]["id"] == order["id"]
    assert api_client.get(f"/store/orders/{order['id']}").status_code == 404
    listing = api_client.get("/store/customers/me/orders", **auth).json()
    assert [o["id"] for o in listing["orders"]] == [order["id"]]
    assert listing["count"] == 1


def test_complete_other_customers_cart_is_404(api_client, localstripe, shop, customer_token):
    owner = UserFactory()
    cart_id = make_cart(shop, [(shop.variant(), 1)], user_id=owner.id)
    paid = pay_cart(localstripe, cart_id)
    _, stranger_token = customer_token

    assert complete(api_client, cart_id, paid.payment_intent_id, token=stranger_token).status_code == 404
    assert complete(api_client, cart_id, paid.payment_intent_id).status_code == 404
    assert Cart.objects.get(pk=cart_id).status == CartStatus.ACTIVE
    assert not Order.objects.exists()


def test_complete_again_returns_same_order_with_200(
    api_client, paid_cart, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = complete(api_client, paid_cart.cart_id, paid_cart.payment_intent_id)
    with django_capture_on_commit_callbacks(execute=True):
        second = complete(api_client, paid_cart.cart_id, paid_cart.payment_intent_id)

    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["order"] == first.json()["order"]
    assert Order.objects.count() == 1
    assert len(mailoutbox) == 1  # confirmation sent once


def test_complete_automatic_capture_records_capture(api_client, localstripe, shop):
    cart_id = make_cart(shop, [(shop.variant(), 1)])
    paid = pay_cart(localstripe, cart_id, capture_method="automatic")

    order = complete(api_client, cart_id, paid.payment_intent_id).json()["order"]

    assert order["payment_status"] == "captured"
    assert order["amount_authorized"] == order["amount_captured"] == paid.total
    kinds = sorted(LedgerEntry.objects.filter(payment_intent_id=paid.payment_intent_id).values_list("kind", flat=True))
    assert kinds == ["authorization", "capture"]


def test_complete_cart_changed_after_authorization_is_422_and_no_order(api_client, localstripe, shop):
    from carts import services as cart_services

    variant = shop.variant(stock=10)
    cart_id = make_cart(shop, [(variant, 1)])
    paid = pay_cart(localstripe, cart_id)
    cart_services.cart_line_add(cart_id=cart_id, user_id=None, variant_id=variant.id, quantity=1)

    response = complete(api_client, cart_id, paid.payment_intent_id)

    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "amount_mismatch"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert not Order.objects.exists()
    assert Cart.objects.get(pk=cart_id).status == CartStatus.ACTIVE
    assert StockLevel.objects.get(variant=variant).on_hand == 10
    # the authorized amount cannot change: the stale authorization is released (issue 10 row 7)
    assert gateway.payment_intent_retrieve(id=paid.payment_intent_id)["status"] == "canceled"
    assert "No order was placed. Your payment authorization was released." in response.json()["error"]["message"]


def test_complete_with_another_carts_payment_intent_is_409_stale(api_client, localstripe, shop):
    cart_a = make_cart(shop, [(shop.variant(), 1)])
    cart_b = make_cart(shop, [(shop.variant(), 1)])
    paid_a = pay_cart(localstripe, cart_a)
    pay_cart(localstripe, cart_b)

    response = complete(api_client, cart_b, paid_a.payment_intent_id)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "payment_session_stale"
    assert Cart.objects.get(pk=cart_b).status == CartStatus.ACTIVE


def test_complete_unknown_payment_intent_is_409_stale(api_client, paid_cart):
    response = complete(api_client, paid_cart.cart_id, "pi_doesnotexist")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "payment_session_stale"


def test_complete_requires_action_is_402(api_client, localstripe, shop):
    cart_id = make_cart(shop, [(shop.variant(), 1)])
    paid = pay_cart(localstripe, cart_id, card=THREE_D_SECURE)

    response = complete(api_client, cart_id, paid.payment_intent_id)
    assert response.status_code == 402
    assert response.json()["error"] == {
        "type": "payment_error",
        "code": "payment_requires_action",
        "message": response.json()["error"]["message"],
        "param": None,
    }
    assert Cart.objects.get(pk=cart_id).status == CartStatus.ACTIVE

    localstripe.authenticate(paid.payment_intent_id, paid.client_secret)
    assert complete(api_client, cart_id, paid.payment_intent_id).status_code == 201


def test_complete_canceled_payment_is_402(api_client, paid_cart):
    gateway.payment_intent_cancel(id=paid_cart.payment_intent_id, idempotency_key="test:cancel")
    response = complete(api_client, paid_cart.cart_id, paid_cart.payment_intent_id)
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "payment_canceled"


def test_complete_unconfirmed_payment_is_402_not_authorized(api_client, localstripe, shop):
    cart_id = make_cart(shop, [(shop.variant(), 1)])
    cart = Cart.objects.get(pk=cart_id)
    from carts.selectors import cart_totals
    from tests.factories.orders import PaymentSessionFactory

    total = cart_totals(cart=Cart.objects.prefetch_related("items").select_related("region").get(pk=cart_id)).total
    intent = gateway.payment_intent_create(
        amount=total,
        currency="usd",
        metadata={"cart_id": cart_id},
        capture_method="manual",
        automatic_payment_methods=False,
        idempotency_key="test:unconfirmed",
    )
    PaymentSessionFactory(cart_id=cart_id, payment_intent_id=intent["id"], amount=total, cart_version=cart.version)

    response = complete(api_client, cart_id, intent["id"])
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "payment_not_authorized"


def test_complete_paid_cart_that_expired_since_still_places_its_order(api_client, paid_cart):
    """The money is held: a 410 would send the shopper to pay again while the webhook places this order."""
    Cart.objects.filter(pk=paid_cart.cart_id).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = complete(api_client, paid_cart.cart_id, paid_cart.payment_intent_id)

    assert response.status_code == 201, response.content
    order = response.json()["order"]
    assert (order["cart_id"], order["total"], order["payment_status"]) == (
        paid_cart.cart_id,
        paid_cart.total,
        "authorized",
    )


def test_complete_unpaid_expired_cart_is_410_and_stays_expired(api_client, localstripe, shop):
    cart_id = make_cart(shop, [(shop.variant(), 1)])
    session = api_client.post(f"/store/carts/{cart_id}/payment-sessions", {"provider_id": "stripe"}, format="json")
    assert session.status_code == 201, session.content
    intent_id = session.json()["payment_session"]["data"]["payment_intent_id"]
    Cart.objects.filter(pk=cart_id).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = complete(api_client, cart_id, intent_id)

    assert response.status_code == 410
    assert response.json()["error"]["code"] == "cart_expired"
    assert api_client.get(f"/store/carts/{cart_id}").json()["cart"]["status"] == "expired"
    assert not Order.objects.filter(cart_id=cart_id).exists()


def test_complete_validates_body(api_client, paid_cart):
    response = api_client.post(f"/store/carts/{paid_cart.cart_id}/complete", {}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "payment_intent_id"
    assert (
        api_client.post("/store/carts/cart_nope/complete", {"payment_intent_id": "pi_x"}, format="json").status_code
        == 404
    )


def test_complete_while_completing_is_409_then_completable_after_timeout(api_client, paid_cart, settings):
    Cart.objects.filter(pk=paid_cart.cart_id).update(status=CartStatus.COMPLETING, completing_since=timezone.now())

    response = complete(api_client, paid_cart.cart_id, paid_cart.payment_intent_id)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "cart_completing"
    # a cart write is refused while completing
    assert (
        api_client.post(f"/store/carts/{paid_cart.cart_id}", {"email": "x@example.com"}, format="json").status_code
        == 409
    )

    # the process that marked it died: after the timeout the cart is completable again
    stuck = timezone.now() - settings.CART_COMPLETING_TIMEOUT - timedelta(seconds=1)
    Cart.objects.filter(pk=paid_cart.cart_id).update(completing_since=stuck)
    response = complete(api_client, paid_cart.cart_id, paid_cart.payment_intent_id)
    assert response.status_code == 201, response.content


def test_kill_switch_blocks_complete_and_keeps_carts_readable(api_client, paid_cart, settings):
    settings.CHECKOUT_ENABLED = False

    response = complete(api_client, paid_cart.cart_id, paid_cart.payment_intent_id)
    assert response.status_code == 503
    assert response.json()["error"] == {
        "type": "api_error",
        "code": "checkout_disabled",
        "message": response.json()["error"]["message"],
        "param": None,
    }
    assert api_client.get(f"/store/carts/{paid_cart.cart_id}").status_code == 200
    assert Cart.objects.get(pk=paid_cart.cart_id).status == CartStatus.ACTIVE
    assert not Order.objects.exists()

    settings.CHECKOUT_ENABLED = True
    assert complete(api_client, paid_cart.cart_id, paid_cart.payment_intent_id).status_code == 201


def test_kill_switch_does_not_stop_webhook_placement(paid_cart, settings):
    from orders import services

    settings.CHECKOUT_ENABLED = False
    order, created = services.order_place(
        cart_id=paid_cart.cart_id, payment_intent_id=paid_cart.payment_intent_id, actor="stripe"
    )
    assert created and order.total == paid_cart.total
    assert OrderEvent.objects.filter(order=order, type="order_placed", actor="stripe").exists()


def test_complete_out_of_stock_after_authorization_cancels_payment(api_client, localstripe, shop):
    variant = shop.variant(stock=1)
    cart_id = make_cart(shop, [(variant, 1)])
    paid = pay_cart(localstripe, cart_id, reserve=False)
    StockLevel.objects.filter(variant=variant).update(on_hand=0)  # sold elsewhere meanwhile

    response = complete(api_client, cart_id, paid.payment_intent_id)

    assert response.status_code == 409
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("conflict_error", "insufficient_inventory", variant.id)
    assert gateway.payment_intent_retrieve(id=paid.payment_intent_id)["status"] == "canceled"
    incident = CheckoutIncident.objects.get()
    assert (incident.cart_id, incident.variant_id, incident.resolution) == (cart_id, variant.id, "payment_canceled")
    assert Cart.objects.get(pk=cart_id).status == CartStatus.ACTIVE
    assert PaymentSession.objects.get(payment_intent_id=paid.payment_intent_id).status == "canceled"
    assert not Order.objects.exists()
    assert StockLevel.objects.get(variant=variant).on_hand == 0
    # a retry does not place an order on a released payment
    again = complete(api_client, cart_id, paid.payment_intent_id)
    assert again.status_code == 402 and again.json()["error"]["code"] == "payment_canceled"


def test_complete_out_of_stock_with_automatic_capture_refunds(api_client, localstripe, shop):
    variant = shop.variant(stock=1)
    cart_id = make_cart(shop, [(variant, 1)])
    paid = pay_cart(localstripe, cart_id, reserve=False, capture_method="automatic")
    StockLevel.objects.filter(variant=variant).update(on_hand=0)

    response = complete(api_client, cart_id, paid.payment_intent_id)

    assert response.status_code == 409
    charge = gateway.payment_intent_retrieve(id=paid.payment_intent_id)["latest_charge"]
    assert charge["amount_refunded"] == paid.total
    assert CheckoutIncident.objects.get().resolution == "payment_refunded"
    refund = LedgerEntry.objects.get(payment_intent_id=paid.payment_intent_id, kind="refund")
    assert refund.amount == paid.total
    # Stripe still says "succeeded": a retry must not place an order on refunded money
    StockLevel.objects.filter(variant=variant).update(on_hand=5)
    again = complete(api_client, cart_id, paid.payment_intent_id)
    assert again.status_code == 402 and again.json()["error"]["code"] == "payment_canceled"
    assert not Order.objects.exists()


def test_complete_backorderable_variant_goes_negative(api_client, localstripe, shop):
    variant = shop.variant(stock=0, allow_backorder=True)
    cart_id = make_cart(shop, [(variant, 2)])
    paid = pay_cart(localstripe, cart_id)

    assert complete(api_client, cart_id, paid.payment_intent_id).status_code == 201
    assert StockLevel.objects.get(variant=variant).on_hand == -2


def test_confirmation_email_once_after_commit(api_client, paid_cart, mailoutbox, django_capture_on_commit_callbacks):
    from orders import services

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        order_id = complete(api_client, paid_cart.cart_id, paid_cart.payment_intent_id).json()["order"]["id"]
    assert mailoutbox == []  # nothing before commit
    assert callbacks  # the confirmation task (and metrics) run after commit
    for _ in range(2):  # a task delivered twice
        for callback in callbacks:
            callback()
    assert services.order_confirmation_send(order_id=order_id) is False

    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    order = Order.objects.get(pk=order_id)
    assert message.to == ["guest@example.com"]
    assert f"#{order.display_id}" in message.subject
    assert "$" in message.body
    assert order.confirmation_sent_at is not None


def test_audit_log_has_ids_and_amounts_and_no_secrets(api_client, paid_cart, caplog):
    with caplog.at_level(logging.DEBUG):
        order = complete(api_client, paid_cart.cart_id, paid_cart.payment_intent_id).json()["order"]

    text = "\n".join(record.getMessage() for record in caplog.records)
    placed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("order.placed ")]
    assert len(placed) == 1
    assert f"order_id={order['id']}" in placed[0]
    assert f"payment_intent_id={paid_cart.payment_intent_id}" in placed[0]
    assert f"amount={paid_cart.total} currency=usd" in placed[0]
    assert paid_cart.client_secret not in text
    assert "_secret_" not in text
    assert "sk_test" not in text
    assert "4242" not in text


def test_full_guest_flow_through_the_store_api(api_client, localstripe, shop):
    """Every step over HTTP: cart, address, shipping, payment session, card (as Stripe.js would), complete."""
    variant = shop.variant(stock=3)
    cart = api_client.post(
        "/store/carts",
        {"region_id": shop.region.id, "email": "ada@example.com", "items": [{"variant_id": variant.id, "quantity": 2}]},
        format="json",
    ).json()["cart"]
    assert (
        api_client.post(f"/store/carts/{cart['id']}", {"shipping_address": ADDRESS_US}, format="json").status_code
        == 200
    )
    cart = api_client.post(
        f"/store/carts/{cart['id']}/shipping-methods", {"option_id": shop.shipping_option.id}, format="json"
    ).json()["cart"]
    response = api_client.post(f"/store/carts/{cart['id']}/payment-sessions", {"provider_id": "stripe"}, format="json")
    assert response.status_code in (200, 201), response.content
    session = response.json()["payment_session"]
    pi_id = session["data"]["payment_intent_id"]
    assert session["amount"] == cart["total"]
    # the browser: Stripe.js creates the card and confirms the intent with the client secret
    assert confirm_card(localstripe, pi_id)["status"] == "requires_capture"

    response = complete(api_client, cart["id"], pi_id)

    assert response.status_code == 201, response.content
    order = response.json()["order"]
    assert order["total"] == cart["total"] == int(gateway.payment_intent_retrieve(id=pi_id)["amount"])
    assert order["email"] == "ada@example.com"
    assert StockLevel.objects.get(variant=variant).on_hand == 1
    assert complete(api_client, cart["id"], pi_id).status_code == 200


def test_complete_with_stripe_unreachable_is_503_and_cart_stays_completable(api_client, paid_cart, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # closed port
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    gateway.reset_client()
    response = complete(api_client, paid_cart.cart_id, paid_cart.payment_intent_id)
    assert response.status_code in (502, 503)
    assert response.json()["error"]["code"] == "payment_provider_unavailable"
    assert Cart.objects.get(pk=paid_cart.cart_id).status == CartStatus.ACTIVE
    assert not Order.objects.exists()
