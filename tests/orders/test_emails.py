"""The emails a shopper gets (issue 11 item 5): confirmation, shipped, delivered, canceled, refunded.

Real PostgreSQL, real localstripe, the real services and the real Celery tasks (eager, run on
commit as in production); Django's locmem backend collects the mail. Each email is sent once
whatever repeats: the task run twice, enqueued twice, a webhook replayed, two workers racing.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.db import connection, transaction
from django.test import TestCase
from django.utils import timezone

from orders import fulfillment, services, tasks
from orders.models import Order, OrderEvent, OrderNotification, OrderStatus
from payments import gateway, ledger
from payments.models import LedgerEntry, LedgerEntryKind, LedgerEntryStatus
from tests.factories.orders import OrderFactory
from tests.orders.conftest import Shop, complete, make_cart, pay_cart, shop_for
from tests.orders.test_after_sale_fixes import broker_down  # noqa: F401 - fixture
from tests.webhooks.conftest import build_event, deliver, raw_client, webhook_secret  # noqa: F401 - fixtures
from webhooks import services as webhook_services
from webhooks.models import WebhookEvent

ARTIFACTS = Path(django_settings.BASE_DIR) / "artifacts" / "emails"


# --- helpers -------------------------------------------------------------------------------


def _place(client: Any, localstripe: Any, shop: Shop, *, quantity: int = 2, capture_method: str = "manual") -> Order:
    """A real order (cart, PaymentIntent at localstripe, complete), its confirmation sent on commit."""
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(stock=10), quantity)]), capture_method=capture_method)
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = complete(client, paid.cart_id, paid.payment_intent_id)
    assert response.status_code == 201, response.content
    return Order.objects.get(pk=response.json()["order"]["id"])


def _html(message: Any) -> str:
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


def _sent(subject_part: str) -> list[Any]:
    return [message for message in mail.outbox if subject_part in message.subject]


def _ship(order: Order, **kwargs: Any) -> Order:
    fulfillment.order_fulfil(order_id=order.pk)
    shipment = {"carrier": "DHL Express", "tracking_number": "JD014600006281230795"} | kwargs
    return fulfillment.order_ship(order_id=order.pk, **shipment)


def _key(order: Order, kind: str, object_id: str = "") -> str:
    return services.notification_key(order_id=order.pk, kind=kind, object_id=object_id)


def _deliver_webhook(client: Any, event: dict[str, Any]) -> WebhookEvent:
    assert deliver(client, event).status_code == 200
    return WebhookEvent.objects.get(stripe_event_id=event["id"])


def _replay(row: WebhookEvent) -> None:
    webhook_services.webhook_event_replay(event_id=row.id)


# --- confirmation --------------------------------------------------------------------------


@pytest.mark.django_db
def test_confirmation_tax_exclusive_shows_line_totals_before_tax(api_client, localstripe, shop, mailoutbox):
    """$14.50 x 2 at 8.75 % exclusive: the line shows $29.00 (it said $31.54, tax included, above a
    $29.00 subtotal and the tax again); the lines add up to the subtotal, tax is added once."""
    with_tax_line = "$31.54"
    order = _place(api_client, localstripe, shop)
    assert (order.subtotal, order.shipping_total, order.tax_total, order.total) == (2900, 500, 298, 3698)

    [message] = mailoutbox
    assert message.subject == f"Order #{order.display_id} confirmed"
    assert "2 x " in message.body and "$14.50 each  $29.00" in message.body
    for text in ("Subtotal: $29.00", "Shipping: $5.00", "Tax: $2.98", "Total: $36.98"):
        assert text in message.body
    assert with_tax_line not in message.body and "(included)" not in message.body
    html = _html(message)
    assert '<td align="right">$29.00</td></tr>' in html.split("<tfoot>")[0]  # the line
    assert with_tax_line not in html and "$36.98" in html and "(included)" not in html
    # the ship-to block is laid out for the country (common.addresses)
    assert (
        "Ships to:\n  Ada Lovelace\n  1 Loom Street\n  Springfield 12345\n  United States of America\n\nWe will"
        in message.body
    )


@pytest.mark.django_db
def test_confirmation_tax_inclusive_says_tax_included(api_client, localstripe, mailoutbox):
    """¥1,200 x 2 at 10 % inclusive: the line is ¥2,400 (the tax in it), tax ¥291 'included'."""
    order = _place(api_client, localstripe, shop_for("jpy"))
    assert (order.subtotal, order.shipping_total, order.tax_total, order.total) == (2400, 800, 291, 3200)

    [message] = mailoutbox
    assert "¥1,200 each  ¥2,400" in message.body
    assert "Tax (included): ¥291" in message.body and "Total: ¥3,200" in message.body
    assert "Tax (included)" in _html(message) and "¥3,200" in _html(message)


# --- shipped -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_shipped_email_has_carrier_tracking_number_and_url_and_is_sent_once(
    api_client, localstripe, shop, mailoutbox, django_capture_on_commit_callbacks
):
    order = _place(api_client, localstripe, shop)
    with django_capture_on_commit_callbacks(execute=True):
        _ship(order, tracking_url="https://www.dhl.com/track?id=JD014600006281230795")

    [message] = _sent("has shipped")
    assert message.subject == f"Order #{order.display_id} has shipped"
    assert message.to == ["guest@example.com"]
    assert "Carrier: DHL Express" in message.body
    assert "Tracking number: JD014600006281230795" in message.body
    assert "Track your parcel: https://www.dhl.com/track?id=JD014600006281230795" in message.body
    assert "Ada Lovelace" in message.body
    html = _html(message)
    assert "<strong>DHL Express</strong>" in html and "<strong>JD014600006281230795</strong>" in html
    assert 'href="https://www.dhl.com/track?id=JD014600006281230795"' in html

    key = _key(order, "shipped")
    # the task run again (a retry, a redelivery) and enqueued twice more: nothing more is sent
    assert tasks.send_order_notification(key) is False
    tasks.send_order_notification.delay(key)
    tasks.send_order_notification.delay(key)
    assert services.order_notifications_resend(older_than=timedelta(0)) == 0
    assert len(_sent("has shipped")) == 1
    notification = OrderNotification.objects.get(key=key)
    assert notification.sent_at is not None
    assert OrderEvent.objects.filter(order=order, type="notification_sent", payload__key=key).count() == 1


@pytest.mark.django_db
def test_shipped_email_without_tracking_url_has_no_link(
    api_client, localstripe, shop, mailoutbox, django_capture_on_commit_callbacks
):
    order = _place(api_client, localstripe, shop)
    with django_capture_on_commit_callbacks(execute=True):
        _ship(order)
    [message] = _sent("has shipped")
    assert "Tracking number: JD014600006281230795" in message.body
    assert "Track your parcel" not in message.body and "href=" not in _html(message)


@pytest.mark.django_db
def test_ship_refuses_a_tracking_url_that_is_not_http(api_client, localstripe, shop, mailoutbox):
    from common.errors import ValidationError

    order = _place(api_client, localstripe, shop)
    fulfillment.order_fulfil(order_id=order.pk)
    with pytest.raises(ValidationError):
        fulfillment.order_ship(
            order_id=order.pk, carrier="DHL", tracking_number="1", tracking_url="javascript:alert(1)"
        )
    assert not OrderNotification.objects.exists()


# --- delivered -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_delivered_email_sent_once(api_client, localstripe, shop, mailoutbox, django_capture_on_commit_callbacks):
    order = _place(api_client, localstripe, shop, capture_method="automatic")
    with django_capture_on_commit_callbacks(execute=True):
        _ship(order)
        fulfillment.order_deliver(order_id=order.pk)

    [message] = _sent("was delivered")
    assert message.subject == f"Order #{order.display_id} was delivered"
    assert f"Order #{order.display_id} ({order.pk}) has been delivered." in message.body
    assert f"Order #{order.display_id} has been delivered." in _html(message)
    assert tasks.send_order_notification(_key(order, "delivered")) is False
    assert len(_sent("was delivered")) == 1
    assert [m.subject for m in mailoutbox] == [
        f"Order #{order.display_id} confirmed",
        f"Order #{order.display_id} has shipped",
        f"Order #{order.display_id} was delivered",
    ]


# --- canceled ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_staff_cancel_emails_that_the_hold_was_released(
    api_client, localstripe, shop, mailoutbox, django_capture_on_commit_callbacks
):
    order = _place(api_client, localstripe, shop)
    version = ledger.ledger_totals(payment_intent_id=order.payment_intent_id).entries  # the admin form's
    with django_capture_on_commit_callbacks(execute=True):
        services.order_payment_cancel(order_id=order.pk, reason="customer asked", expected_version=version)
    with django_capture_on_commit_callbacks(execute=True):  # the form submitted twice
        services.order_payment_cancel(order_id=order.pk, reason="customer asked", expected_version=version)

    [message] = _sent("was canceled")
    assert message.subject == f"Order #{order.display_id} was canceled"
    assert "The hold of $36.98 on your card was released: you were not charged for it." in message.body
    assert "refunded" not in message.body
    html = _html(message)
    assert "The hold of <strong>$36.98</strong> on your card was released" in html
    assert "customer asked" not in message.body + html  # the staff note is not the shopper's
    assert "Ships to" not in html


@pytest.mark.django_db
def test_stripe_cancel_emails_once_and_a_replayed_webhook_sends_nothing_more(
    api_client, localstripe, shop, mailoutbox, raw_client, webhook_secret, django_capture_on_commit_callbacks
):
    """The authorization lapsed (or was canceled in the dashboard): payment_intent.canceled, twice
    from Stripe, then replayed by staff; the shopper gets one email."""
    order = _place(api_client, localstripe, shop)
    localstripe.request("POST", f"/v1/payment_intents/{order.payment_intent_id}/cancel", {})
    intent = localstripe.request("GET", f"/v1/payment_intents/{order.payment_intent_id}")
    event = build_event("payment_intent.canceled", intent | {"cancellation_reason": "automatic"})
    with django_capture_on_commit_callbacks(execute=True):
        row = _deliver_webhook(raw_client, event)
    with django_capture_on_commit_callbacks(execute=True):
        _deliver_webhook(raw_client, build_event("payment_intent.canceled", intent))  # another event, same fact
    with django_capture_on_commit_callbacks(execute=True):
        _replay(row)
    row.refresh_from_db()
    assert row.attempts == 2 and row.status == "processed"

    order.refresh_from_db()
    assert (order.status, order.payment_status) == ("canceled", "canceled")
    [message] = _sent("was canceled")
    assert "The hold of $36.98 on your card was released" in message.body
    assert OrderNotification.objects.filter(order=order).count() == 1


# --- refunded ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_refund_email_per_succeeded_staff_refund_with_the_amount(
    api_client, localstripe, mailoutbox, django_capture_on_commit_callbacks
):
    """KD (three decimals): 2 x 1.250 + 0.750 shipping + 0.170 tax = KD 3.420; refunded in two parts."""
    order = _place(api_client, localstripe, shop_for("kwd"), capture_method="automatic")
    assert order.total == 3420
    with django_capture_on_commit_callbacks(execute=True):
        services.order_payment_refund(order_id=order.pk, amount=1250, reason="one item returned")
    with django_capture_on_commit_callbacks(execute=True):
        services.order_payment_refund(order_id=order.pk, amount=2170, reason="the rest")

    first, second = _sent("Refund of")
    assert first.subject == f"Refund of KD 1.250 for order #{order.display_id}"
    assert "We refunded KD 1.250 to your card." in first.body and "Refunded: KD 1.250" in first.body
    assert "We refunded <strong>KD 1.250</strong>" in _html(first)
    assert second.subject == f"Refund of KD 2.170 for order #{order.display_id}"
    assert "Refunded: KD 2.170" in second.body

    # Stripe's refund events arrive afterwards (charge.refunded): the sync finds the same refunds
    with django_capture_on_commit_callbacks(execute=True):
        services.order_payment_sync(payment_intent_id=order.payment_intent_id)
    refunds = LedgerEntry.objects.filter(payment_intent_id=order.payment_intent_id, kind=LedgerEntryKind.REFUND)
    assert refunds.count() == 2
    for refund in refunds:
        assert tasks.send_order_notification(_key(order, "refunded", refund.idempotency_key)) is False
    assert len(_sent("Refund of")) == 2


@pytest.mark.django_db
def test_dashboard_refund_emailed_once_under_webhook_replay(
    api_client, localstripe, shop, mailoutbox, raw_client, webhook_secret, django_capture_on_commit_callbacks
):
    order = _place(api_client, localstripe, shop, capture_method="automatic")
    localstripe.request("POST", "/v1/refunds", {"payment_intent": order.payment_intent_id, "amount": 1000})
    charge = localstripe.request(
        "GET", f"/v1/charges/{gateway.latest_charge_id(gateway.payment_intent_retrieve(id=order.payment_intent_id))}"
    )
    with django_capture_on_commit_callbacks(execute=True):
        row = _deliver_webhook(raw_client, build_event("charge.refunded", charge))
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            _replay(row)

    [message] = _sent("Refund of")
    assert message.subject == f"Refund of $10.00 for order #{order.display_id}"
    assert "Refunded: $10.00" in message.body
    assert ledger.ledger_totals(payment_intent_id=order.payment_intent_id).refunded == 1000


@pytest.mark.django_db
def test_a_pending_refund_sends_nothing_until_it_succeeds(mailoutbox, django_capture_on_commit_callbacks):
    order = OrderFactory(payment_status="captured")
    LedgerEntry.objects.create(
        payment_intent_id=order.payment_intent_id,
        order_id=order.pk,
        kind=LedgerEntryKind.REFUND,
        status=LedgerEntryStatus.PENDING,
        amount=500,
        currency_code="usd",
        idempotency_key="refund:re_slow",
        stripe_object_id="re_slow",
    )
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        assert services.order_refund_notifications_record(order=services.order_lock(order_id=order.pk)) == []
    assert mailoutbox == []

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        locked = services.order_lock(order_id=order.pk)
        assert ledger.ledger_refund_status_set(stripe_refund_id="re_slow", status=LedgerEntryStatus.SUCCEEDED) == 1
        assert services.order_refund_notifications_record(order=locked) == [_key(order, "refunded", "refund:re_slow")]
    [message] = mailoutbox
    assert message.subject == f"Refund of $5.00 for order #{order.display_id}"


# --- once: broker down, a failing send, a dead worker, two workers racing --------------------


class _SmtpDown:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send_messages(self, messages: Any) -> int:
        raise ConnectionRefusedError("smtp down")


def _owe_delivered(order: Order) -> str:
    with transaction.atomic():
        services.order_notification_record(order=services.order_lock(order_id=order.pk), kind="delivered")
    return _key(order, "delivered")


@pytest.mark.django_db(transaction=True)
def test_broker_down_at_commit_leaves_the_row_for_the_resend_sweep(mailoutbox, broker_down, caplog):  # noqa: F811
    order = OrderFactory()
    key = _owe_delivered(order)  # the enqueue on commit fails: logged, not raised
    assert "order.notification_enqueue_failed" in caplog.text
    assert mailoutbox == []

    assert services.order_notifications_resend(older_than=timedelta(minutes=5)) == 0  # left to its task a while
    assert services.order_notifications_resend(older_than=timedelta(0)) == 1
    assert services.order_notifications_resend(older_than=timedelta(0)) == 0
    assert [m.subject for m in mailoutbox] == [f"Order #{order.display_id} was delivered"]
    assert OrderNotification.objects.get(key=key).sent_at is not None


@pytest.mark.django_db
def test_a_failing_send_releases_the_claim_and_the_retry_sends_once(
    mailoutbox, settings, django_capture_on_commit_callbacks
):
    order = OrderFactory()
    with django_capture_on_commit_callbacks(execute=False):
        key = _owe_delivered(order)
    settings.EMAIL_BACKEND = f"{__name__}._SmtpDown"
    with pytest.raises(ConnectionRefusedError):
        services.order_notification_send(key=key)
    assert OrderNotification.objects.get(key=key).claimed_at is None  # released for the retry
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert services.order_notification_send(key=key) is True
    assert services.order_notification_send(key=key) is False
    assert len(mailoutbox) == 1


@pytest.mark.django_db
def test_a_claim_of_a_dead_worker_lapses_after_the_lease(mailoutbox, django_capture_on_commit_callbacks):
    order = OrderFactory()
    with django_capture_on_commit_callbacks(execute=False):
        key = _owe_delivered(order)
    OrderNotification.objects.filter(key=key).update(claimed_at=timezone.now())  # claimed, then the worker died
    assert services.order_notification_send(key=key) is False
    assert services.order_notifications_resend(older_than=timedelta(0)) == 0
    later = timezone.now() + timedelta(minutes=11)
    assert services.order_notifications_resend(older_than=timedelta(0), now=later) == 1
    assert services.order_notifications_resend(older_than=timedelta(0), now=later) == 0
    assert len(mailoutbox) == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_send_one_email(mailoutbox):
    """Real threads, each its own PostgreSQL connection, released together at the claim."""
    order = OrderFactory()
    with transaction.atomic():
        services.order_notification_record(order=services.order_lock(order_id=order.pk), kind="canceled")
    key = _key(order, "canceled")
    OrderNotification.objects.filter(key=key).update(sent_at=None, claimed_at=None)  # the eager task on commit sent it
    mail.outbox.clear()
    OrderEvent.objects.filter(order=order, type="notification_sent").delete()

    rounds, workers = 5, 4
    for _ in range(rounds):
        barrier = threading.Barrier(workers)
        results: list[bool] = []
        errors: list[BaseException] = []

        def worker(
            barrier: threading.Barrier = barrier, results: list[bool] = results, errors: list[BaseException] = errors
        ) -> None:
            try:
                barrier.wait(timeout=10)
                results.append(tasks.send_order_notification(key))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        assert sorted(results) == [False] * (workers - 1) + [True]
        assert len(mail.outbox) == 1
        mail.outbox.clear()
        OrderNotification.objects.filter(key=key).update(sent_at=None, claimed_at=None)  # the next round
    assert OrderEvent.objects.filter(order=order, type="notification_sent").count() == rounds


# --- for the reviewer: every email as the shopper sees it --------------------------------------


def _one_of_each(client: Any, localstripe: Any, shop: Shop) -> dict[str, Any]:
    """One order's whole life (placed, shipped, captured, delivered, part refunded) and a canceled
    one: every kind of email, by kind."""
    order = _place(client, localstripe, shop)
    with TestCase.captureOnCommitCallbacks(execute=True):
        _ship(order, tracking_url="https://www.dhl.com/track?id=JD014600006281230795")
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.order_payment_capture(order_id=order.pk)
    with TestCase.captureOnCommitCallbacks(execute=True):
        fulfillment.order_deliver(order_id=order.pk)
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.order_payment_refund(order_id=order.pk, amount=1450, reason="one returned")
    other = _place(client, localstripe, shop, quantity=1)
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.order_payment_cancel(order_id=other.pk)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.COMPLETED  # delivered, captured (then part refunded)

    subjects = {
        "confirmation": f"Order #{order.display_id} confirmed",
        "shipped": f"Order #{order.display_id} has shipped",
        "delivered": f"Order #{order.display_id} was delivered",
        "refunded": f"Refund of $14.50 for order #{order.display_id}",
        "canceled": f"Order #{other.display_id} was canceled",
    }
    by_subject = {message.subject: message for message in mail.outbox}
    assert set(subjects.values()) <= set(by_subject)
    return {kind: by_subject[subject] for kind, subject in subjects.items()}


@pytest.mark.django_db
def test_every_email_rendered_to_artifacts(api_client, localstripe, shop, mailoutbox):
    """Writes artifacts/emails/<kind>.html (and .txt) for a reviewer; checks each was written."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for kind, message in _one_of_each(api_client, localstripe, shop).items():
        (ARTIFACTS / f"{kind}.html").write_text(_html(message))
        (ARTIFACTS / f"{kind}.txt").write_text(f"Subject: {message.subject}\n\n{message.body}")
        assert message.subject in (ARTIFACTS / f"{kind}.txt").read_text()
        assert (ARTIFACTS / f"{kind}.html").read_text().startswith("<!doctype html>")


@pytest.mark.browser
@pytest.mark.django_db
def test_every_email_screenshot_to_artifacts(api_client, localstripe, shop, mailoutbox, monkeypatch):
    """artifacts/emails/<kind>.png: each HTML part as headless Chromium draws it (no network: the
    emails reference no other host)."""
    from devtools.chromium import CHROMIUM, chromium_launch

    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    messages = _one_of_each(api_client, localstripe, shop)  # the ORM work, before Playwright's loop runs
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = chromium_launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 720, "height": 600})
            page.on("request", lambda request: requests.append(request.url))
            for kind, message in messages.items():
                page.set_content(_html(message))
                assert page.title() == message.subject
                page.screenshot(path=str(ARTIFACTS / f"{kind}.png"), full_page=True)
                assert (ARTIFACTS / f"{kind}.png").stat().st_size > 0
        finally:
            browser.close()
    assert [url for url in requests if not url.startswith(("about:", "data:"))] == []
