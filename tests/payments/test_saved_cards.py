"""Saved cards: save while paying, list, pay with one (server-side confirm), detach; ownership."""

from __future__ import annotations

import pytest

from catalog.models import StockReservation
from payments import gateway
from payments.models import PaymentSession, PaymentSessionStatus, StripeCustomer
from payments.services import stripe_customer_get_or_create
from tests.factories import UserFactory, VariantFactory
from tests.helpers import DECLINED_AT_CONFIRM, THREE_D_SECURE, VISA, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(db):
    user = UserFactory(email="ada@example.com")
    return user, token_for(user)


@pytest.fixture
def bob(db):
    user = UserFactory(email="bob@example.com")
    return user, token_for(user)


def _list(shop, token):
    return shop.client.get("/store/customers/me/payment-methods", HTTP_AUTHORIZATION=f"Bearer {token}")


def _delete(shop, token, payment_method_id):
    return shop.client.delete(
        f"/store/customers/me/payment-methods/{payment_method_id}", HTTP_AUTHORIZATION=f"Bearer {token}"
    )


def test_saved_card_full_flow(shop, fake_stripe, ada, bob, django_capture_on_commit_callbacks):
    from payments import services

    user, token = ada
    variant = VariantFactory(prices={"usd": 2000})
    assert _list(shop, token).json() == {"payment_methods": []}  # no Stripe Customer yet

    # 1. Pay a first cart and ask to save the card.
    first_cart = shop.cart((variant, 1), token=token)
    response = shop.pay(first_cart["id"], token=token, save_payment_method=True)
    assert response.status_code == 201, response.content
    intent_id = response.json()["payment_session"]["data"]["payment_intent_id"]
    stripe_customer_id = StripeCustomer.objects.get(user_id=user.id).stripe_customer_id
    assert gateway.payment_intent_retrieve(id=intent_id)["customer"] == stripe_customer_id
    confirmed = fake_stripe.browser.confirm_card(intent_id, VISA)
    assert confirmed["status"] == "requires_capture"
    # What order completion / the webhook handler do once the intent is authorized.
    with django_capture_on_commit_callbacks(execute=True):
        services.payment_session_sync_from_intent(payment_intent=confirmed)

    # 2. It is listed (and only for its owner).
    listed = _list(shop, token)
    assert listed.status_code == 200
    [card] = listed.json()["payment_methods"]
    assert card == {
        "id": confirmed["payment_method"],
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2034,
    }
    bob_user, bob_token = bob
    assert _list(shop, bob_token).json() == {"payment_methods": []}

    # 3. Pay a second cart with it: confirmed server-side.
    second_cart = shop.cart((variant, 2), token=token)
    response = shop.pay(second_cart["id"], token=token, payment_method_id=card["id"])
    assert response.status_code == 201, response.content
    body = response.json()["payment_session"]
    assert body["status"] == "authorized"
    intent = gateway.payment_intent_retrieve(id=body["data"]["payment_intent_id"])
    assert (intent["status"], intent["amount"], intent["payment_method"]) == (
        "requires_capture",
        second_cart["total"],
        card["id"],
    )

    # 4. Another customer can neither pay with it nor delete it.
    bob_cart = shop.cart((variant, 1), token=bob_token)
    response = shop.pay(bob_cart["id"], token=bob_token, payment_method_id=card["id"])
    assert (response.status_code, response.json()["error"]["code"], response.json()["error"]["param"]) == (
        404,
        "not_found",
        "payment_method_id",
    )
    assert not StockReservation.objects.filter(cart_id=bob_cart["id"]).exists()
    guest_cart = shop.cart((variant, 1))
    assert shop.pay(guest_cart["id"], payment_method_id=card["id"]).status_code == 404
    deleted = _delete(shop, bob_token, card["id"])
    assert deleted.status_code == 404

    # 5. Its owner detaches it.
    deleted = _delete(shop, token, card["id"])
    assert deleted.status_code == 200
    assert deleted.json() == {"id": card["id"], "deleted": True}
    assert _list(shop, token).json() == {"payment_methods": []}


def test_saved_card_declined_is_typed_402_and_releases_stock(shop, fake_stripe, ada):
    user, token = ada
    declined = fake_stripe.browser.saved_card(stripe_customer_get_or_create(user_id=user.id), DECLINED_AT_CONFIRM)
    cart = shop.cart((VariantFactory(), 1), token=token)

    response = shop.pay(cart["id"], token=token, payment_method_id=declined)

    assert response.status_code == 402
    assert response.json()["error"] == {
        "type": "payment_error",
        "code": "card_declined",
        "message": "Your card was declined.",
        "param": None,
    }
    session = PaymentSession.objects.get(cart_id=cart["id"], is_active=True)
    assert session.status == PaymentSessionStatus.FAILED
    assert not StockReservation.objects.filter(cart_id=cart["id"]).exists()

    # Another saved card on the same cart works (localstripe cannot reconfirm a declined
    # intent, so the session moves to a new one there; on Stripe the same intent is reused).
    good = fake_stripe.browser.saved_card(StripeCustomer.objects.get(user_id=user.id).stripe_customer_id, VISA)
    retry = shop.pay(cart["id"], token=token, payment_method_id=good)
    assert retry.status_code in (200, 201), retry.content
    assert retry.json()["payment_session"]["status"] == "authorized"
    assert StockReservation.objects.filter(cart_id=cart["id"]).exists()


def test_saved_card_3d_secure_requires_action_then_authorized(shop, fake_stripe, ada):
    user, token = ada
    card = fake_stripe.browser.saved_card(stripe_customer_get_or_create(user_id=user.id), THREE_D_SECURE)
    cart = shop.cart((VariantFactory(), 1), token=token)

    response = shop.pay(cart["id"], token=token, payment_method_id=card)

    assert response.status_code == 201, response.content
    body = response.json()["payment_session"]
    assert body["status"] == "requires_action"
    intent_id = body["data"]["payment_intent_id"]
    fake_stripe.server.authenticate(intent_id, body["data"]["client_secret"], success=True)
    assert gateway.payment_intent_retrieve(id=intent_id)["status"] == "requires_capture"
    assert shop.pay(cart["id"], token=token).json()["payment_session"]["status"] == "authorized"


def test_saved_card_unknown_payment_method_is_404(shop, fake_stripe, ada):
    user, token = ada
    stripe_customer_get_or_create(user_id=user.id)
    cart = shop.cart((VariantFactory(), 1), token=token)
    response = shop.pay(cart["id"], token=token, payment_method_id="pm_doesnotexist")
    assert (response.status_code, response.json()["error"]["param"]) == (404, "payment_method_id")


def test_payment_methods_endpoints_require_authentication(api_client):
    assert api_client.get("/store/customers/me/payment-methods").status_code == 401
    response = api_client.delete("/store/customers/me/payment-methods/pm_x")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "not_authenticated")


def test_stripe_customer_is_created_once(fake_stripe, ada):
    user, _ = ada
    first = stripe_customer_get_or_create(user_id=user.id)
    assert stripe_customer_get_or_create(user_id=user.id) == first
    assert StripeCustomer.objects.filter(user_id=user.id).count() == 1
    assert fake_stripe.server.request("GET", f"/v1/customers/{first}")["email"] == "ada@example.com"


def test_payment_methods_list_query_budget(shop, fake_stripe, ada, django_assert_num_queries):
    user, token = ada
    customer = stripe_customer_get_or_create(user_id=user.id)
    for number in (VISA, THREE_D_SECURE):
        fake_stripe.browser.saved_card(customer, number)

    with django_assert_num_queries(2):  # the bearer token, the Stripe Customer id
        response = _list(shop, token)

    assert sorted(m["last4"] for m in response.json()["payment_methods"]) == ["3184", "4242"]


UPDATE_PATH = r"^/v1/payment_intents/[^/]+$"


def test_intent_update_key_names_the_intent_so_a_retry_after_a_decline_is_not_a_400(shop, fake_stripe, ada):
    """Issue 10 row 8: the PaymentIntent update key names the intent; the same update of a
    replacement intent (after a decline) is not refused by Stripe as a reused key (400)."""
    user, token = ada
    declined = fake_stripe.browser.saved_card(stripe_customer_get_or_create(user_id=user.id), DECLINED_AT_CONFIRM)
    cart = shop.cart((VariantFactory(), 1), token=token)

    assert shop.pay(cart["id"], token=token).status_code == 201  # intent A, no card yet
    first = PaymentSession.objects.get(cart_id=cart["id"], is_active=True).payment_intent_id
    assert shop.pay(cart["id"], token=token, payment_method_id=declined).status_code == 402  # update A, decline
    assert shop.pay(cart["id"], token=token).status_code == 201  # A canceled, intent B
    second = PaymentSession.objects.get(cart_id=cart["id"], is_active=True).payment_intent_id
    retry = shop.pay(cart["id"], token=token, payment_method_id=declined)  # the same update, now of B

    assert first != second
    assert retry.status_code == 402, retry.content  # Stripe's decline again, not a 400 idempotency_error
    assert retry.json()["error"]["code"] == "card_declined"
    updates = [e for e in fake_stripe.server.requests_log(path=UPDATE_PATH, method="POST")]
    assert [e["path"] for e in updates] == [f"/v1/payment_intents/{first}", f"/v1/payment_intents/{second}"]
    for entry in updates:
        assert entry["path"].rsplit("/", 1)[1] in entry["idempotency_key"]
