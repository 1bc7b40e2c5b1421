"""POST /store/carts/{id}/payment-sessions against a real localstripe and PostgreSQL."""

from __future__ import annotations

import socket

import pytest

from catalog.models import StockReservation
from payments import gateway
from payments.models import PaymentSession, PaymentSessionStatus
from tests.factories import UserFactory, VariantFactory
from tests.helpers import ADDRESS_US, DECLINED_AT_CONFIRM, THREE_D_SECURE, token_for
from tests.plugins.localstripe import LocalStripeError

pytestmark = pytest.mark.django_db


def test_payment_session_happy_path_authorizes_exact_cart_total(shop, fake_stripe, django_capture_on_commit_callbacks):
    variant = VariantFactory(prices={"usd": 1450})
    cart = shop.cart((variant, 3))
    # 3 x 1450 = 4350 + 500 shipping; tax 8.75%: 380.625 -> 381 and 43.75 -> 44
    assert cart["total"] == 4350 + 500 + 381 + 44

    with django_capture_on_commit_callbacks(execute=True):  # runs the mirror task (eager here)
        response = shop.pay(cart["id"])

    assert response.status_code == 201, response.content
    body = response.json()["payment_session"]
    assert body["id"].startswith("ps_")
    assert body["provider_id"] == "stripe"
    assert body["status"] == "pending"
    assert body["amount"] == cart["total"]
    assert body["currency_code"] == "usd"
    intent_id = body["data"]["payment_intent_id"]
    assert intent_id.startswith("pi_")
    assert body["data"]["client_secret"].startswith(f"{intent_id}_secret_")

    confirmed = fake_stripe.browser.confirm_card(intent_id)

    assert confirmed["status"] == "requires_capture"
    intent = gateway.payment_intent_retrieve(id=intent_id)
    assert intent["amount"] == 5275
    assert intent["currency"] == "usd"
    assert intent["capture_method"] == "manual"
    assert intent["metadata"] == {"cart_id": cart["id"], "region_id": shop.region.id, "email": "ada@example.com"}
    session = PaymentSession.objects.get(pk=body["id"])
    assert (session.cart_id, session.payment_intent_id, session.amount) == (cart["id"], intent_id, 5275)
    # The created intent is mirrored into dj-stripe (read-only copy) by a task queued on commit.
    from djstripe.models import PaymentIntent as MirroredIntent

    assert MirroredIntent.objects.get(id=intent_id).stripe_data["amount"] == 5275
    # The cart shows its session.
    shown = shop.client.get(f"/store/carts/{cart['id']}").json()["cart"]["payment_session"]
    assert shown["data"]["payment_intent_id"] == intent_id


def test_payment_session_metadata_has_customer_id_for_signed_in_customer(shop, fake_stripe):
    user = UserFactory()
    token = token_for(user)
    cart = shop.cart((VariantFactory(), 1), token=token)

    response = shop.pay(cart["id"], token=token)

    assert response.status_code == 201, response.content
    intent = gateway.payment_intent_retrieve(id=response.json()["payment_session"]["data"]["payment_intent_id"])
    assert intent["metadata"]["customer_id"] == user.id
    assert intent["customer"].startswith("cus_")  # the user's Stripe Customer, created on first use


def test_payment_session_after_cart_change_updates_same_intent(shop, fake_stripe):
    variant = VariantFactory(prices={"usd": 1000})
    cart = shop.cart((variant, 1))
    first = shop.pay(cart["id"]).json()["payment_session"]

    changed = shop.client.post(
        f"/store/carts/{cart['id']}/line-items", {"variant_id": variant.id, "quantity": 2}, format="json"
    ).json()["cart"]
    response = shop.pay(cart["id"])

    assert response.status_code == 200, response.content
    second = response.json()["payment_session"]
    assert second["id"] == first["id"]
    assert second["data"]["payment_intent_id"] == first["data"]["payment_intent_id"]
    assert second["amount"] == changed["total"] == 3000 + 500 + 263 + 44
    assert gateway.payment_intent_retrieve(id=first["data"]["payment_intent_id"])["amount"] == changed["total"]
    assert PaymentSession.objects.filter(cart_id=cart["id"]).count() == 1


def test_payment_session_repeated_without_change_reuses_intent_without_writes(shop, fake_stripe):
    cart = shop.cart((VariantFactory(), 1))
    first = shop.pay(cart["id"]).json()["payment_session"]

    again = shop.pay(cart["id"])

    assert again.status_code == 200
    assert again.json()["payment_session"]["data"] == first["data"]


def test_payment_session_authorized_then_cart_changed_replaces_and_cancels_old_intent(shop, fake_stripe):
    variant = VariantFactory(prices={"usd": 1000})
    cart = shop.cart((variant, 1))
    first = shop.pay(cart["id"]).json()["payment_session"]
    old_intent = first["data"]["payment_intent_id"]
    assert fake_stripe.browser.confirm_card(old_intent)["status"] == "requires_capture"

    shop.client.post(f"/store/carts/{cart['id']}/line-items", {"variant_id": variant.id, "quantity": 1}, format="json")
    response = shop.pay(cart["id"])

    assert response.status_code == 201, response.content
    new = response.json()["payment_session"]
    assert new["data"]["payment_intent_id"] != old_intent
    assert new["amount"] == 2000 + 500 + 175 + 44
    assert gateway.payment_intent_retrieve(id=old_intent)["status"] == "canceled"
    old = PaymentSession.objects.get(payment_intent_id=old_intent)
    assert (old.is_active, old.status) == (False, PaymentSessionStatus.CANCELED)


def test_payment_session_authorized_and_unchanged_is_kept(shop, fake_stripe):
    cart = shop.cart((VariantFactory(), 1))
    first = shop.pay(cart["id"]).json()["payment_session"]
    fake_stripe.browser.confirm_card(first["data"]["payment_intent_id"])

    response = shop.pay(cart["id"])

    assert response.status_code == 200
    body = response.json()["payment_session"]
    assert body["data"]["payment_intent_id"] == first["data"]["payment_intent_id"]
    assert body["status"] == "authorized"


def test_payment_session_3d_secure_in_browser_then_authorized(shop, fake_stripe):
    cart = shop.cart((VariantFactory(), 1))
    body = shop.pay(cart["id"]).json()["payment_session"]
    intent_id = body["data"]["payment_intent_id"]

    assert fake_stripe.browser.confirm_card(intent_id, THREE_D_SECURE)["status"] == "requires_action"
    assert shop.pay(cart["id"]).json()["payment_session"]["status"] == "requires_action"
    fake_stripe.server.authenticate(intent_id, body["data"]["client_secret"], success=True)

    assert gateway.payment_intent_retrieve(id=intent_id)["status"] == "requires_capture"
    assert shop.pay(cart["id"]).json()["payment_session"]["status"] == "authorized"


def test_payment_session_after_a_browser_decline_gets_a_fresh_intent_that_can_be_paid(shop, fake_stripe):
    cart = shop.cart((VariantFactory(prices={"usd": 1000}), 1))
    first = shop.pay(cart["id"]).json()["payment_session"]
    declined_intent = first["data"]["payment_intent_id"]
    with pytest.raises(LocalStripeError) as declined:
        fake_stripe.browser.confirm_card(declined_intent, DECLINED_AT_CONFIRM)
    assert declined.value.status == 402

    response = shop.pay(cart["id"])

    assert response.status_code == 201, response.content
    retry = response.json()["payment_session"]
    assert retry["data"]["payment_intent_id"] != declined_intent
    assert (retry["status"], retry["amount"]) == ("pending", cart["total"])
    assert gateway.payment_intent_retrieve(id=declined_intent)["status"] == "canceled"
    assert fake_stripe.browser.confirm_card(retry["data"]["payment_intent_id"])["status"] == "requires_capture"
    completed = shop.client.post(
        f"/store/carts/{cart['id']}/complete", {"payment_intent_id": retry["data"]["payment_intent_id"]}, format="json"
    )
    assert completed.status_code == 201, completed.content
    assert completed.json()["order"]["amount_authorized"] == cart["total"]


@pytest.mark.parametrize(
    ("change", "code", "param"),
    [
        ({"email": ""}, "missing_email", "email"),
        ({"shipping_address": None}, "missing_shipping_address", "shipping_address"),
    ],
)
def test_payment_session_requires_payable_cart(shop, fake_stripe, change, code, param):
    cart = shop.cart((VariantFactory(), 1))
    shop.client.post(f"/store/carts/{cart['id']}", change, format="json")

    response = shop.pay(cart["id"])

    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "code": code,
        "message": response.json()["error"]["message"],
        "param": param,
    }
    assert not PaymentSession.objects.exists()
    assert not StockReservation.objects.exists()


def test_payment_session_empty_cart_and_missing_shipping_method(api_client, region_usd, fake_stripe):
    cart = api_client.post("/store/carts", {"region_id": region_usd.id, "email": "a@example.com"}, format="json")
    cart_id = cart.json()["cart"]["id"]
    body = {"provider_id": "stripe"}
    response = api_client.post(f"/store/carts/{cart_id}/payment-sessions", body, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "cart_empty")

    variant = VariantFactory()
    api_client.post(f"/store/carts/{cart_id}/line-items", {"variant_id": variant.id, "quantity": 1}, format="json")
    api_client.post(f"/store/carts/{cart_id}", {"shipping_address": ADDRESS_US}, format="json")
    response = api_client.post(f"/store/carts/{cart_id}/payment-sessions", body, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "missing_shipping_method")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "provider_id"),
        ({"provider_id": "paypal"}, "provider_id"),
        ({"provider_id": "stripe", "save_payment_method": "yes"}, "save_payment_method"),
        ({"provider_id": "stripe", "payment_method_id": 12}, "payment_method_id"),
    ],
)
def test_payment_session_validates_input(shop, body, param):
    cart = shop.cart((VariantFactory(), 1))
    response = shop.client.post(f"/store/carts/{cart['id']}/payment-sessions", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["param"] == param


def test_payment_session_guest_cannot_save_card(shop, fake_stripe):
    cart = shop.cart((VariantFactory(), 1))
    response = shop.pay(cart["id"], save_payment_method=True)
    assert (response.status_code, response.json()["error"]["param"]) == (400, "save_payment_method")
    assert not StockReservation.objects.exists()


def test_payment_session_other_customers_cart_is_404(shop, fake_stripe):
    owner = UserFactory()
    cart = shop.cart((VariantFactory(), 1), token=token_for(owner))
    response = shop.pay(cart["id"], token=token_for(UserFactory()))
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
    assert shop.pay(cart["id"]).status_code == 404  # and for a guest


def test_payment_session_checkout_disabled_is_503(shop, settings):
    cart = shop.cart((VariantFactory(), 1))
    settings.CHECKOUT_ENABLED = False

    response = shop.pay(cart["id"])

    assert response.status_code == 503
    assert response.json()["error"]["type"] == "api_error"
    assert response.json()["error"]["code"] == "checkout_disabled"
    assert not StockReservation.objects.exists()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_payment_session_stripe_unreachable_is_503_and_retry_succeeds(shop, fake_stripe, settings, localstripe_server):
    cart = shop.cart((VariantFactory(), 2))
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{_closed_port()}"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    gateway.reset_client()

    response = shop.pay(cart["id"])

    assert response.status_code == 503
    assert response.json()["error"] == {
        "type": "api_error",
        "code": "payment_provider_unavailable",
        "message": "The payment provider is unavailable. Please retry.",
        "param": None,
    }
    assert not PaymentSession.objects.exists()
    assert not StockReservation.objects.exists()

    settings.STRIPE_API_BASE = localstripe_server
    gateway.reset_client()
    retry = shop.pay(cart["id"])
    assert retry.status_code == 201, retry.content
    assert StockReservation.objects.get(cart_id=cart["id"]).quantity == 2


def test_payment_session_stripe_unreachable_on_update_keeps_session(shop, fake_stripe, settings, localstripe_server):
    variant = VariantFactory()
    cart = shop.cart((variant, 1))
    first = shop.pay(cart["id"]).json()["payment_session"]
    shop.client.post(f"/store/carts/{cart['id']}/line-items", {"variant_id": variant.id, "quantity": 1}, format="json")
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{_closed_port()}"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    gateway.reset_client()

    assert shop.pay(cart["id"]).status_code == 503

    settings.STRIPE_API_BASE = localstripe_server
    gateway.reset_client()
    retry = shop.pay(cart["id"])
    assert retry.status_code == 200
    assert retry.json()["payment_session"]["data"]["payment_intent_id"] == first["data"]["payment_intent_id"]


def test_payment_session_sync_and_fail_services(shop, fake_stripe, django_capture_on_commit_callbacks):
    from payments import services

    cart = shop.cart((VariantFactory(), 1))
    body = shop.pay(cart["id"]).json()["payment_session"]
    intent_id = body["data"]["payment_intent_id"]
    assert StockReservation.objects.filter(cart_id=cart["id"]).exists()

    confirmed = fake_stripe.browser.confirm_card(intent_id)
    with django_capture_on_commit_callbacks(execute=True):
        session = services.payment_session_sync_from_intent(payment_intent=confirmed)
    assert session.status == PaymentSessionStatus.AUTHORIZED
    # A late payment_failed event does not undo an authorization.
    assert services.payment_session_fail(payment_intent_id=intent_id).status == PaymentSessionStatus.AUTHORIZED
    assert services.payment_session_sync_from_intent(payment_intent={"id": "pi_unknown", "status": "succeeded"}) is None

    PaymentSession.objects.filter(pk=session.pk).update(status=PaymentSessionStatus.PENDING)
    failed = services.payment_session_fail(payment_intent_id=intent_id)
    assert failed.status == PaymentSessionStatus.FAILED
    assert not StockReservation.objects.filter(cart_id=cart["id"]).exists()


def test_payment_session_refresh_query_budget_is_constant_in_lines(shop, fake_stripe, django_assert_num_queries):
    """A repeated call (cart unchanged) costs the same number of queries for 1 or 5 lines."""
    small = shop.cart((VariantFactory(), 1))
    large = shop.cart(*((VariantFactory(), 2) for _ in range(5)))
    for cart in (small, large):
        assert shop.pay(cart["id"]).status_code == 201

    # savepoint pair + cart lock + lines + the stock hold (one statement) + session read + update
    with django_assert_num_queries(7):
        assert shop.pay(small["id"]).status_code == 200
    with django_assert_num_queries(7):
        assert shop.pay(large["id"]).status_code == 200
