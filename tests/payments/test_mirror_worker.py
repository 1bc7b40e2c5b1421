"""The dj-stripe mirror, written by a REAL Celery worker (not in the request), stays complete.

What the payment-session, saved-card and card-token requests mirrored inline before issue 13
(the PaymentIntent after create / update / confirm / cancel, the Customers we create, the
PaymentMethods we detach or attach) is now mirrored by ``payments.tasks.stripe_object_mirror``,
enqueued on commit. These tests go through the store API, with the worker of
``tests.plugins.celery_worker`` reading this test's queue, and wait for the rows it writes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from payments.models import PaymentSession, StripeCustomer
from tests.factories import UserFactory, VariantFactory
from tests.helpers import VISA, token_for
from tests.payments.test_card_token import card_token
from tests.plugins.celery_worker import celery_broker, celery_unconsumed_queue, celery_worker  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 30.0  # seconds the worker gets to write a row (a deadline, not a measurement)


def _wait_for(model: Any, worker: Any, **filters: Any) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        row = model.objects.filter(**filters).first()
        if row is not None:
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"{model.__name__} {filters} not mirrored:\n{worker.output()[-3000:]}")
        time.sleep(0.2)


def test_worker_mirrors_a_guest_card_payment(shop, fake_stripe, celery_broker):  # noqa: F811
    from djstripe import models as djstripe_models

    cart = shop.cart((VariantFactory(prices={"usd": 1450}), 2))

    response = shop.pay(cart["id"], card_token=card_token(fake_stripe, VISA))

    assert response.status_code == 201, response.content
    intent_id = response.json()["payment_session"]["data"]["payment_intent_id"]
    intent = _wait_for(
        djstripe_models.PaymentIntent,
        celery_broker,
        id=intent_id,
        stripe_data__status="requires_capture",
        stripe_data__amount=cart["total"],
    )
    session = PaymentSession.objects.get(payment_intent_id=intent_id)
    if session.stripe_customer_id:  # the guest cart's own Customer, when the flow makes one
        assert intent.customer_id == session.stripe_customer_id
        _wait_for(djstripe_models.Customer, celery_broker, id=session.stripe_customer_id)


def test_worker_mirrors_saved_card_payment_customer_and_detach(shop, fake_stripe, celery_broker):  # noqa: F811
    from djstripe import models as djstripe_models

    user = UserFactory(email="ada@example.com")
    bearer = token_for(user)
    first = shop.cart((VariantFactory(prices={"usd": 2000}), 1), token=bearer)
    response = shop.pay(first["id"], token=bearer)  # creates ada's Stripe Customer
    assert response.status_code == 201, response.content
    stripe_customer_id = StripeCustomer.objects.get(user_id=user.pk).stripe_customer_id
    customer = _wait_for(djstripe_models.Customer, celery_broker, id=stripe_customer_id)
    assert customer.stripe_data["email"] == "ada@example.com"
    first_intent = response.json()["payment_session"]["data"]["payment_intent_id"]
    _wait_for(
        djstripe_models.PaymentIntent, celery_broker, id=first_intent, stripe_data__status="requires_payment_method"
    )

    payment_method = fake_stripe.browser.saved_card(stripe_customer_id, VISA)
    second = shop.cart((VariantFactory(prices={"usd": 3000}), 1), token=bearer)
    paid = shop.pay(second["id"], token=bearer, payment_method_id=payment_method)
    assert paid.status_code == 201, paid.content
    second_intent = paid.json()["payment_session"]["data"]["payment_intent_id"]
    mirrored = _wait_for(
        djstripe_models.PaymentIntent, celery_broker, id=second_intent, stripe_data__status="requires_capture"
    )
    assert mirrored.customer_id == stripe_customer_id
    assert mirrored.payment_method_id == payment_method
    _wait_for(djstripe_models.PaymentMethod, celery_broker, id=payment_method)

    detached = shop.client.delete(
        f"/store/customers/me/payment-methods/{payment_method}", HTTP_AUTHORIZATION=f"Bearer {bearer}"
    )
    assert detached.status_code in (200, 204), detached.content
    _wait_for(djstripe_models.PaymentMethod, celery_broker, id=payment_method, customer__isnull=True)


def test_the_request_leaves_the_mirror_to_the_worker(shop, fake_stripe, celery_unconsumed_queue):  # noqa: F811
    """With no worker reading the queue, the request writes no dj-stripe row: the task carries it."""
    import redis
    from djstripe import models as djstripe_models

    from tests.plugins.celery_worker import broker_url

    cart = shop.cart((VariantFactory(prices={"usd": 1450}), 1))

    response = shop.pay(cart["id"], card_token=card_token(fake_stripe, VISA))

    assert response.status_code == 201, response.content
    assert not djstripe_models.PaymentIntent.objects.exists()
    assert not djstripe_models.Customer.objects.exists()
    assert redis.Redis.from_url(broker_url()).llen(celery_unconsumed_queue) >= 1
