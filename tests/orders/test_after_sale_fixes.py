"""Issue 10 ("money after the sale"): the rows fixed in placement, confirmation, fulfilment and reconciliation.

Real PostgreSQL, real localstripe (``localstripe`` fixture), no mocks of our own code.
"""

from __future__ import annotations

from typing import Any

import pytest


from collections.abc import Iterator
from datetime import timedelta

from django.utils import timezone

from orders.models import Order, OrderEvent
from payments.models import PaymentSession
from tests.orders.conftest import Shop, complete, make_cart, pay_cart

CLOSED_BROKER = "redis://127.0.0.1:9/0"  # nothing listens on the discard port


def _forget_broker_connections(app: Any) -> None:
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


@pytest.fixture
def broker_down() -> Iterator[None]:
    """This process publishes tasks to a broker that refuses connections (not eagerly)."""
    from config.celery import app

    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_url")}
    app.conf.update(task_always_eager=False, broker_url=CLOSED_BROKER)
    _forget_broker_connections(app)
    try:
        yield
    finally:
        app.conf.update(saved)
        _forget_broker_connections(app)


class KilledMidSend:
    """An e-mail backend whose worker dies while sending (SystemExit is not an Exception)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send_messages(self, messages: Any) -> int:
        raise SystemExit("worker killed")


# --- Row 5: broker down at commit; a confirmation claim is a lease ------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("save_card", [False, True], ids=["guest", "saving_a_card"])
def test_complete_answers_201_with_the_broker_down_and_the_resend_sends_once(
    api_client: Any, localstripe: Any, shop: Shop, mailoutbox: list[Any], broker_down: None, save_card: bool
) -> None:
    """Issue 10 row 5: the broker down at commit does not turn a placed order into a 500; the resend sends it once."""
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(stock=5), 1)]))
    if save_card:  # the card save is enqueued on the same commit (payment_session_sync_from_intent)
        PaymentSession.objects.filter(payment_intent_id=paid.payment_intent_id).update(save_payment_method=True)

    response = complete(api_client, paid.cart_id, paid.payment_intent_id)

    assert response.status_code == 201, response.content
    order = Order.objects.get(pk=response.json()["order"]["id"])
    assert order.payment_intent_id == paid.payment_intent_id
    assert order.confirmation_sent_at is None and mailoutbox == []

    from orders.services import order_confirmations_resend

    assert order_confirmations_resend(older_than=timedelta(0)) == 1
    assert order_confirmations_resend(older_than=timedelta(0)) == 0
    assert [message.to for message in mailoutbox] == [[order.email]]
    assert OrderEvent.objects.filter(order=order, type="confirmation_sent").count() == 1


@pytest.mark.django_db(transaction=True)
def test_resend_leaves_fresh_orders_to_their_task(
    api_client: Any, localstripe: Any, shop: Shop, mailoutbox: list[Any], broker_down: None
) -> None:
    """Issue 10 row 5: an order younger than ``older_than`` is left to the task enqueued at placement."""
    from orders.services import order_confirmations_resend

    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(stock=5), 1)]))
    assert complete(api_client, paid.cart_id, paid.payment_intent_id).status_code == 201

    assert order_confirmations_resend(older_than=timedelta(minutes=5)) == 0
    assert mailoutbox == []


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_while_sending_leaves_a_claim_that_expires(
    api_client: Any, localstripe: Any, shop: Shop, mailoutbox: list[Any], settings: Any
) -> None:
    """Issue 10 row 5: a worker killed between claiming and sending does not leave the confirmation unsent forever."""
    from orders.services import order_confirmation_send, order_confirmations_resend

    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(stock=5), 1)]))
    settings.EMAIL_BACKEND = f"{__name__}.KilledMidSend"
    with pytest.raises(SystemExit):  # the eager task is the worker; it dies mid-send
        complete(api_client, paid.cart_id, paid.payment_intent_id)
    order = Order.objects.get(cart_id=paid.cart_id)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    # The task's retry while the claim is fresh does not send a second copy...
    assert order_confirmation_send(order_id=order.pk) is False
    assert order_confirmations_resend(older_than=timedelta(0)) == 0
    # ...once the claim's lease has run out, the resend sweep sends it.
    later = timezone.now() + timedelta(minutes=30)
    assert order_confirmations_resend(older_than=timedelta(0), now=later) == 1
    assert order_confirmations_resend(older_than=timedelta(0), now=later) == 0
    assert [message.to for message in mailoutbox] == [[order.email]]
    order.refresh_from_db()
    assert order.confirmation_sent_at is not None


def test_beat_runs_the_after_sale_sweeps(settings: Any) -> None:
    """Issue 10 scope 4: resend unsent confirmations, resume pending payment operations, reconcile payments."""
    from config.celery import app
    from orders import tasks as order_tasks  # noqa: F401 - registers the tasks

    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"orders.resend_confirmations", "orders.resume_payment_operations", "webhooks.reconcile_payments"} <= tasks
    assert {"orders.resend_confirmations", "orders.resume_payment_operations"} <= set(app.tasks)
