"""Paying with a Stripe.js card token (``card_token``), against a real localstripe.

What the storefront page does: ``stripe.createToken(cardElement)`` in the browser, then
``POST /store/carts/{id}/payment-sessions {provider_id, card_token}``. The server attaches
the token to a Stripe Customer (the signed-in customer's, else one per guest cart), sets the
card on the cart's PaymentIntent and confirms it.
"""

from __future__ import annotations

import pytest

from catalog.models import StockReservation
from payments import gateway
from payments.models import PaymentSession, PaymentSessionStatus, StripeCustomer
from tests.factories import UserFactory, VariantFactory
from tests.helpers import DECLINED_AT_CONFIRM, THREE_D_SECURE, VISA, token_for

pytestmark = pytest.mark.django_db

DECLINED_ON_ATTACH = "4000000000000002"


def card_token(fake_stripe, number: str) -> str:
    """``stripe.createToken(card)``: the card and the publishable key, no secret key."""
    body = {"card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}, "key": "pk_test_browser"}
    return fake_stripe.server.request("POST", "/v1/tokens", body)["id"]


def _session(response) -> dict:
    return response.json()["payment_session"]


def test_card_token_authorizes_guest_cart_on_its_own_customer(shop, fake_stripe):
    cart = shop.cart((VariantFactory(prices={"usd": 1450}), 2))

    response = shop.pay(cart["id"], card_token=card_token(fake_stripe, VISA))

    assert response.status_code == 201, response.content
    session = _session(response)
    assert session["status"] == "authorized"
    assert session["amount"] == cart["total"]
    intent = gateway.payment_intent_retrieve(id=session["data"]["payment_intent_id"])
    assert intent["status"] == "requires_capture"
    assert intent["amount"] == cart["total"]
    assert intent["payment_method"].startswith("card_")
    # One Stripe Customer for this guest cart, kept on its session; not a customer of ours.
    row = PaymentSession.objects.get(pk=session["id"])
    assert intent["customer"] == row.stripe_customer_id
    assert row.stripe_customer_id.startswith("cus_")
    assert row.customer_id == ""
    assert not StripeCustomer.objects.exists()
    assert fake_stripe.server.request("GET", f"/v1/customers/{row.stripe_customer_id}")["metadata"] == {
        "cart_id": cart["id"]
    }


def test_card_token_declined_then_another_card_on_same_cart(shop, fake_stripe):
    variant = VariantFactory(prices={"usd": 2000})
    cart = shop.cart((variant, 1))

    declined = shop.pay(cart["id"], card_token=card_token(fake_stripe, DECLINED_AT_CONFIRM))

    assert declined.status_code == 402, declined.content
    assert declined.json()["error"]["code"] == "card_declined"
    assert declined.json()["error"]["type"] == "payment_error"
    assert declined.json()["error"]["message"] == "Your card was declined."
    assert not StockReservation.objects.filter(cart_id=cart["id"]).exists()  # hold released
    first = PaymentSession.objects.get(cart_id=cart["id"])
    assert first.status == PaymentSessionStatus.FAILED

    paid = shop.pay(cart["id"], card_token=card_token(fake_stripe, VISA))

    assert paid.status_code in (200, 201), paid.content
    session = _session(paid)
    assert session["status"] == "authorized"
    intent = gateway.payment_intent_retrieve(id=session["data"]["payment_intent_id"])
    assert intent["status"] == "requires_capture"
    assert intent["amount"] == cart["total"]
    # the guest cart's Customer is reused for the second card; one active session
    active = PaymentSession.objects.get(cart_id=cart["id"], is_active=True)
    assert active.stripe_customer_id == first.stripe_customer_id == intent["customer"]
    assert StockReservation.objects.filter(cart_id=cart["id"]).exists()


def test_card_token_declined_on_attach_is_402_and_creates_no_session(shop, fake_stripe):
    cart = shop.cart((VariantFactory(), 1))

    response = shop.pay(cart["id"], card_token=card_token(fake_stripe, DECLINED_ON_ATTACH))

    assert response.status_code == 402, response.content
    assert response.json()["error"]["code"] == "card_declined"
    assert not PaymentSession.objects.filter(cart_id=cart["id"]).exists()
    assert not StockReservation.objects.filter(cart_id=cart["id"]).exists()


def test_card_token_3d_secure_requires_action_then_authenticated(shop, fake_stripe):
    cart = shop.cart((VariantFactory(), 1))

    response = shop.pay(cart["id"], card_token=card_token(fake_stripe, THREE_D_SECURE))

    assert response.status_code == 201, response.content
    session = _session(response)
    assert session["status"] == "requires_action"
    intent_id, secret = session["data"]["payment_intent_id"], session["data"]["client_secret"]
    # stripe.confirmCardPayment(client_secret) in the browser
    assert fake_stripe.server.authenticate(intent_id, secret)["status"] == "requires_capture"
    # a repeated call (cart unchanged) reports it authorized without new Stripe writes
    again = shop.pay(cart["id"])
    assert again.status_code == 200, again.content
    assert _session(again)["status"] == "authorized"
    assert _session(again)["data"]["payment_intent_id"] == intent_id


def test_card_token_failed_3d_secure_then_another_card(shop, fake_stripe):
    cart = shop.cart((VariantFactory(), 1))
    session = _session(shop.pay(cart["id"], card_token=card_token(fake_stripe, THREE_D_SECURE)))
    failed = fake_stripe.server.authenticate(
        session["data"]["payment_intent_id"], session["data"]["client_secret"], success=False
    )
    assert failed["status"] == "requires_payment_method"

    response = shop.pay(cart["id"], card_token=card_token(fake_stripe, VISA))

    assert response.status_code in (200, 201), response.content
    assert _session(response)["status"] == "authorized"


def test_card_token_signed_in_customer_uses_their_stripe_customer(shop, fake_stripe):
    user = UserFactory()
    token = token_for(user)
    cart = shop.cart((VariantFactory(), 1), token=token)

    response = shop.pay(cart["id"], token=token, card_token=card_token(fake_stripe, VISA))

    assert response.status_code == 201, response.content
    intent = gateway.payment_intent_retrieve(id=_session(response)["data"]["payment_intent_id"])
    assert intent["status"] == "requires_capture"
    assert intent["customer"] == StripeCustomer.objects.get(user_id=user.id).stripe_customer_id


def test_card_token_and_payment_method_id_together_is_400(shop, fake_stripe):
    cart = shop.cart((VariantFactory(), 1))

    response = shop.pay(cart["id"], card_token="tok_abc", payment_method_id="pm_abc")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "card_token"


@pytest.mark.parametrize("value", ["pm_123", "tok_", "tok_a b", 12, True])
def test_card_token_must_look_like_a_token(shop, value):
    cart = shop.cart((VariantFactory(), 1))

    response = shop.pay(cart["id"], card_token=value)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["param"] == "card_token"


def test_card_token_unknown_token_is_a_typed_error_not_500(shop, fake_stripe):
    cart = shop.cart((VariantFactory(), 1))

    response = shop.pay(cart["id"], card_token="tok_doesnotexist")

    assert response.status_code in (400, 402, 404, 502), response.content
    assert response.json()["error"]["code"] != "internal_error"
    assert not StockReservation.objects.filter(cart_id=cart["id"]).exists()


def test_card_token_intent_is_mirrored_into_djstripe(shop, fake_stripe, caplog, django_capture_on_commit_callbacks):
    from djstripe.models import PaymentIntent as MirroredIntent

    cart = shop.cart((VariantFactory(), 1))
    with django_capture_on_commit_callbacks(execute=True):  # the mirror task, queued on commit (eager here)
        response = shop.pay(cart["id"], card_token=card_token(fake_stripe, VISA))

    intent_id = _session(response)["data"]["payment_intent_id"]
    assert MirroredIntent.objects.filter(id=intent_id).exists()
    assert not [r for r in caplog.records if "stripe_mirror_failed" in r.getMessage()]
