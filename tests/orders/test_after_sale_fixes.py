"""Issue 10 ("money after the sale"): the rows fixed in placement, confirmation, fulfilment and reconciliation.

Real PostgreSQL, real localstripe (``localstripe`` fixture), no mocks of our own code.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from orders.models import Order, OrderEvent, PaymentStatus
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


# --- Row 7: a cart changed after authorization ---------------------------------------------------

from carts import selectors as cart_selectors  # noqa: E402
from carts import services as cart_services  # noqa: E402
from carts.models import Cart, CartStatus  # noqa: E402
from orders.models import CheckoutIncident  # noqa: E402
from payments import gateway  # noqa: E402
from payments.models import LedgerEntry, PaymentSessionStatus  # noqa: E402
from webhooks import reconciliation  # noqa: E402


def _cart_changed_after_paying(localstripe: Any, shop: Shop, *, capture_method: str) -> Any:
    variant = shop.variant(stock=10)
    paid = pay_cart(localstripe, make_cart(shop, [(variant, 1)]), capture_method=capture_method)
    cart_services.cart_line_add(cart_id=paid.cart_id, user_id=None, variant_id=variant.id, quantity=1)
    return paid


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("capture_method", "stripe_status", "resolution", "released_kind"),
    [
        ("manual", "canceled", "payment_canceled", "void"),
        ("automatic", "succeeded", "payment_refunded", "refund"),
    ],
)
def test_amount_mismatch_at_complete_releases_the_payment(
    api_client: Any,
    localstripe: Any,
    shop: Shop,
    capture_method: str,
    stripe_status: str,
    resolution: str,
    released_kind: str,
) -> None:
    """Issue 10 row 7: a cart changed after authorization gets no order, and its money is released (cancel/refund)."""
    paid = _cart_changed_after_paying(localstripe, shop, capture_method=capture_method)

    response = complete(api_client, paid.cart_id, paid.payment_intent_id)

    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "amount_mismatch"
    assert not Order.objects.exists()
    intent = gateway.payment_intent_retrieve(id=paid.payment_intent_id)
    assert intent["status"] == stripe_status
    if capture_method == "automatic":
        assert [r["amount"] for r in gateway.refund_list(payment_intent=paid.payment_intent_id)] == [paid.total]
    [incident] = CheckoutIncident.objects.filter(payment_intent_id=paid.payment_intent_id)
    assert (incident.kind, incident.resolution, incident.amount) == ("amount_mismatch", resolution, paid.total)
    kinds = sorted(LedgerEntry.objects.filter(payment_intent_id=paid.payment_intent_id).values_list("kind", flat=True))
    assert released_kind in kinds and "authorization" in kinds
    session = PaymentSession.objects.get(payment_intent_id=paid.payment_intent_id)
    assert (session.is_active, session.status) == (False, PaymentSessionStatus.CANCELED)
    assert Cart.objects.get(pk=paid.cart_id).status == CartStatus.ACTIVE
    # the released intent is not an order's any more, and the sweep leaves it alone
    again = complete(api_client, paid.cart_id, paid.payment_intent_id)
    assert again.status_code == 402 and again.json()["error"]["code"] == "payment_canceled"
    outcome = reconciliation.payment_intent_reconcile(payment_intent_id=paid.payment_intent_id)
    assert outcome.action in ("unchanged", "session_updated") and not Order.objects.exists()
    assert CheckoutIncident.objects.filter(payment_intent_id=paid.payment_intent_id).count() == 1


@pytest.mark.django_db
def test_amount_mismatch_found_by_reconciliation_releases_the_authorization(localstripe: Any, shop: Shop) -> None:
    """Issue 10 row 7: the sweep does not re-claim a mismatched authorization every 15 minutes for 8 days."""
    paid = _cart_changed_after_paying(localstripe, shop, capture_method="manual")

    first = reconciliation.payment_intent_reconcile(payment_intent_id=paid.payment_intent_id)
    second = reconciliation.payment_intent_reconcile(payment_intent_id=paid.payment_intent_id)

    assert first.action == "unfulfillable"
    assert second.action in ("unchanged", "session_updated")
    assert gateway.payment_intent_retrieve(id=paid.payment_intent_id)["status"] == "canceled"
    [incident] = CheckoutIncident.objects.filter(payment_intent_id=paid.payment_intent_id)
    assert (incident.kind, incident.resolution) == ("amount_mismatch", "payment_canceled")
    assert paid.payment_intent_id not in {
        s.payment_intent_id for s in reconciliation.payment_sessions_to_reconcile(grace=timedelta(0))
    }


@pytest.mark.django_db
def test_after_a_mismatch_release_the_shopper_pays_the_new_amount(
    api_client: Any, localstripe: Any, shop: Shop
) -> None:
    """Issue 10 row 7: the next payment session is a fresh PaymentIntent for the new total."""
    paid = _cart_changed_after_paying(localstripe, shop, capture_method="automatic")
    assert complete(api_client, paid.cart_id, paid.payment_intent_id).status_code == 422

    response = api_client.post(
        f"/store/carts/{paid.cart_id}/payment-sessions", {"provider_id": "stripe"}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    session = body.get("payment_session") or body
    new_total = cart_selectors.cart_totals(cart=cart_selectors.cart_queryset().get(pk=paid.cart_id)).total
    fresh = session["data"]["payment_intent_id"]
    assert fresh != paid.payment_intent_id
    assert session["amount"] == gateway.payment_intent_retrieve(id=fresh)["amount"] == new_total > paid.total


# --- Row 10: a release that failed is retried by reconciliation ----------------------------------

from catalog.models import StockLevel  # noqa: E402

CANCEL_PATH = r"^/v1/payment_intents/.+/cancel$"


@pytest.mark.django_db
@pytest.mark.parametrize("when", ["before", "after"], ids=["cancel_refused", "answer_lost"])
def test_oversold_release_that_failed_is_retried_by_the_sweep(
    api_client: Any, localstripe: Any, shop: Shop, when: str
) -> None:
    """Issue 10 row 10: an action_failed incident's authorization is released by reconciliation (same key)."""
    variant = shop.variant(stock=1)
    paid = pay_cart(localstripe, make_cart(shop, [(variant, 1)]), reserve=False)
    StockLevel.objects.filter(variant=variant).update(on_hand=0)  # sold elsewhere meanwhile
    localstripe.fault(path=CANCEL_PATH, status=500, count=10, when=when)

    response = complete(api_client, paid.cart_id, paid.payment_intent_id)

    assert response.status_code == 409 and response.json()["error"]["code"] == "insufficient_inventory"
    incident = CheckoutIncident.objects.get(payment_intent_id=paid.payment_intent_id)
    assert incident.resolution == "action_failed"
    localstripe.faults_clear()

    report = reconciliation.payments_reconcile(grace=timedelta(0))

    assert [fix.action for fix in report.fixes] == ["incident_released"], report.errors
    assert gateway.payment_intent_retrieve(id=paid.payment_intent_id)["status"] == "canceled"
    incident.refresh_from_db()
    assert incident.resolution == "payment_canceled"
    voids = LedgerEntry.objects.filter(payment_intent_id=paid.payment_intent_id, kind="void", status="succeeded")
    assert [v.amount for v in voids] == [paid.total]
    session = PaymentSession.objects.get(payment_intent_id=paid.payment_intent_id)
    assert (session.is_active, session.status) == (False, PaymentSessionStatus.CANCELED)
    keys = {entry["idempotency_key"] for entry in localstripe.requests_log(path=CANCEL_PATH)}
    assert keys == {f"pi:{paid.payment_intent_id}:cancel:oos"}
    # resolved now: the next sweep leaves it alone
    assert reconciliation.payments_reconcile(grace=timedelta(0)).fixes == []
    assert CheckoutIncident.objects.filter(payment_intent_id=paid.payment_intent_id).count() == 1


# --- Row 3: the sweep keeps reconciling refunded orders -------------------------------------------

from tests.factories.orders import OrderFactory, PaymentSessionFactory  # noqa: E402


@pytest.mark.django_db
def test_sweep_keeps_refunded_orders_and_skips_canceled_ones() -> None:
    """Issue 10 row 3: a refund can fail after succeeding and a dispute can come later: refunded orders stay swept."""
    refunded = OrderFactory(payment_status=PaymentStatus.REFUNDED)
    canceled = OrderFactory(payment_status=PaymentStatus.CANCELED)
    for order in (refunded, canceled):
        PaymentSessionFactory(cart_id=order.cart_id, payment_intent_id=order.payment_intent_id)

    swept = {s.payment_intent_id for s in reconciliation.payment_sessions_to_reconcile(grace=timedelta(0))}

    assert refunded.payment_intent_id in swept
    assert canceled.payment_intent_id not in swept


# --- Row 11 (a): an aborted completion puts an expired cart back to expired ------------------------

from tests.helpers import THREE_D_SECURE  # noqa: E402


@pytest.mark.django_db
def test_aborted_completion_leaves_an_expired_cart_expired(api_client: Any, localstripe: Any, shop: Shop) -> None:
    """Issue 10 row 11a: a failed completion of an expired cart does not turn it back to active."""
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(stock=5), 1)]), card=THREE_D_SECURE)  # not authorized
    Cart.objects.filter(pk=paid.cart_id).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert cart_services.carts_expire() >= 1
    assert Cart.objects.get(pk=paid.cart_id).status == CartStatus.EXPIRED

    response = complete(api_client, paid.cart_id, paid.payment_intent_id)

    assert response.status_code == 410 and response.json()["error"]["code"] == "cart_expired"
    cart = Cart.objects.get(pk=paid.cart_id)
    assert (cart.status, cart.completing_since) == (CartStatus.EXPIRED, None)


@pytest.mark.django_db
def test_aborted_completion_puts_an_active_cart_back_to_active(api_client: Any, localstripe: Any, shop: Shop) -> None:
    """Issue 10 row 11a: an active cart goes back to active after a failed completion."""
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(stock=5), 1)]), card=THREE_D_SECURE)

    response = complete(api_client, paid.cart_id, paid.payment_intent_id)

    assert response.status_code == 402
    assert Cart.objects.get(pk=paid.cart_id).status == CartStatus.ACTIVE


# --- Row 11 (e): idempotency records replay the client secret to the caller, never to staff -------


@pytest.mark.django_db
def test_payment_session_replay_keeps_its_client_secret_and_records_have_no_admin(
    api_client: Any, localstripe: Any, shop: Shop
) -> None:
    """Issue 10 row 11e: the stored payment-session response still replays the shopper's client_secret;
    no admin page shows idempotency records."""
    from django.contrib import admin

    from common.models import IdempotencyRecord

    cart_id = make_cart(shop, [(shop.variant(stock=5), 1)])
    path = f"/store/carts/{cart_id}/payment-sessions"
    first = api_client.post(path, {"provider_id": "stripe"}, format="json", HTTP_IDEMPOTENCY_KEY="pay-1")
    replay = api_client.post(path, {"provider_id": "stripe"}, format="json", HTTP_IDEMPOTENCY_KEY="pay-1")

    assert first.status_code == 201, first.content
    assert replay.headers.get("Idempotent-Replayed") == "true"
    secret = first.json()["payment_session"]["data"]["client_secret"]
    assert secret and replay.json()["payment_session"]["data"]["client_secret"] == secret
    assert not admin.site.is_registered(IdempotencyRecord)


# --- Row 11 (d): one lock order for placement and a declined payment -----------------------------

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from catalog.models import StockReservation  # noqa: E402
from payments import services as payment_services  # noqa: E402


def _locked_tables(queries: list[dict[str, Any]]) -> list[str]:
    """The tables of the SELECT ... FOR UPDATE statements, in order (repeats collapsed)."""
    order: list[str] = []
    for query in queries:
        sql = query["sql"]
        if "FOR UPDATE" not in sql:
            continue
        for table in ("catalog_stocklevel", "payments_paymentsession", "carts_cart"):
            if f'FROM "{table}"' in sql and (not order or order[-1] != table):
                order.append(table)
    return order


@pytest.mark.django_db(transaction=True)
def test_a_declined_payment_locks_stock_rows_before_the_session_row(localstripe: Any, shop: Shop) -> None:
    """Issue 10 row 11d: payment_session_fail takes the stock rows before the session row, as placement does.

    Two real transactions: the session is marked failed alone, then the hold is released under
    the stock rows' locks and the session row is re-checked after them."""
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(stock=5), 1)]))
    PaymentSession.objects.filter(payment_intent_id=paid.payment_intent_id).update(status=PaymentSessionStatus.PENDING)

    with CaptureQueriesContext(connection) as fail_queries:
        payment_services.payment_session_fail(payment_intent_id=paid.payment_intent_id)

    assert PaymentSession.objects.get(payment_intent_id=paid.payment_intent_id).status == PaymentSessionStatus.FAILED
    assert not StockReservation.objects.filter(cart_id=paid.cart_id).exists()
    locks = _locked_tables(fail_queries.captured_queries)
    assert locks == ["payments_paymentsession", "catalog_stocklevel", "payments_paymentsession"], locks


@pytest.mark.django_db
def test_placement_locks_stock_rows_before_the_session_row(api_client: Any, localstripe: Any, shop: Shop) -> None:
    """Issue 10 row 11d: placement's order: cart row, stock rows, then the session row."""
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(stock=5), 1)]))

    with CaptureQueriesContext(connection) as place_queries:
        assert complete(api_client, paid.cart_id, paid.payment_intent_id).status_code == 201

    assert _locked_tables(place_queries.captured_queries)[-2:] == ["catalog_stocklevel", "payments_paymentsession"]
