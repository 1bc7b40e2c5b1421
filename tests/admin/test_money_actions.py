"""Capture, cancel and refund from the admin, against localstripe, through the confirmation pages."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from backoffice.forms import amount_input
from common.money import format_money
from orders.models import Order, OrderEvent, PaymentStatus
from payments import gateway, ledger
from payments.models import LedgerEntry, LedgerEntryKind, LedgerEntryStatus
from tests.admin.conftest import action_url, ledger_version, messages_of, order_url, place_order
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db


def kinds(order: Order) -> list[tuple[str, int, str]]:
    rows = LedgerEntry.objects.filter(payment_intent_id=order.payment_intent_id).order_by("created_at", "id")
    return [(row.kind, row.amount, row.status) for row in rows]


def post(client: Client, order: Order, action: str, **data: Any) -> Any:
    data.setdefault("ledger_version", ledger_version(client, order, action))
    return client.post(action_url(order, action), data, follow=True)


def test_capture_page_shows_the_money_and_a_csrf_protected_form(staff_client, placed_order):
    page = staff_client.get(action_url(placed_order, "capture"))

    assert page.status_code == 200
    html = page.content.decode()
    assert "csrfmiddlewaretoken" in html
    assert f'value="{amount_input(placed_order.total, "usd")}"' in html  # full capture prefilled
    assert format_money(placed_order.total, "usd") in html
    assert 'id="ck-confirm"' in html


def test_partial_capture_then_refund_of_the_rest(staff_client, staff, placed_order, localstripe):
    order = placed_order
    total = order.total
    part = total - 500  # keep $5.00 of the authorization back

    response = post(staff_client, order, "capture", amount=amount_input(part, "usd"), reason="one item missing")

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == order_url(order)
    assert messages_of(response) == [
        (
            "success",
            f"Captured {format_money(part, 'usd')} of order #{order.display_id}. The uncaptured $5.00 was released.",
        )
    ]
    order.refresh_from_db()
    assert order.payment_status == PaymentStatus.PARTIALLY_CAPTURED
    assert kinds(order) == [
        (LedgerEntryKind.AUTHORIZATION, total, LedgerEntryStatus.SUCCEEDED),
        (LedgerEntryKind.CAPTURE, part, LedgerEntryStatus.SUCCEEDED),
        (LedgerEntryKind.VOID, 500, LedgerEntryStatus.SUCCEEDED),
    ]
    intent = gateway.payment_intent_retrieve(id=order.payment_intent_id)
    assert intent["status"] == "succeeded"
    capture_row = LedgerEntry.objects.get(payment_intent_id=order.payment_intent_id, kind=LedgerEntryKind.CAPTURE)
    assert capture_row.actor == "staff" and capture_row.actor_user_id == str(staff.pk)
    assert capture_row.stripe_object_id.startswith("ch_")

    # the page now offers a refund of what was captured, not of the order total
    page = staff_client.get(action_url(order, "refund"))
    assert f'value="{amount_input(part, "usd")}"' in page.content.decode()

    response = post(staff_client, order, "refund", amount=amount_input(part, "usd"), reason="requested_by_customer")

    assert messages_of(response) == [("success", f"Refunded {format_money(part, 'usd')} of order #{order.display_id}.")]
    order.refresh_from_db()
    assert order.payment_status == PaymentStatus.REFUNDED
    totals = ledger.ledger_totals(payment_intent_id=order.payment_intent_id)
    assert (totals.authorized, totals.captured, totals.voided, totals.refunded) == (total, part, 500, part)
    assert totals.capturable == 0 and totals.refundable == 0
    refund_row = LedgerEntry.objects.get(payment_intent_id=order.payment_intent_id, kind=LedgerEntryKind.REFUND)
    assert refund_row.stripe_object_id.startswith("re_")
    assert refund_row.reason == "requested_by_customer"
    refund = localstripe.request("GET", f"/v1/refunds/{refund_row.stripe_object_id}")
    assert refund["amount"] == part  # an explicit amount (localstripe refunds everything without one)

    staff_events = OrderEvent.objects.filter(order=order, actor="staff")
    assert set(staff_events.values_list("actor_user_id", flat=True)) == {str(staff.pk)}
    steps = [(e.payload["from"], e.payload["to"]) for e in staff_events.filter(type="payment_status_changed")]
    assert steps == [("authorized", "partially_captured"), ("partially_captured", "refunded")]
    # and the order page shows it all
    html = staff_client.get(order_url(order)).content.decode()
    assert "Payment ledger" in html and refund_row.stripe_object_id in html and "one item missing" in html


def test_double_post_of_the_capture_form_captures_once(staff_client, placed_order):
    order = placed_order
    version = ledger_version(staff_client, order, "capture")
    data = {"amount": amount_input(order.total, "usd"), "reason": "", "ledger_version": version}

    first = staff_client.post(action_url(order, "capture"), data, follow=True)
    second = staff_client.post(action_url(order, "capture"), data, follow=True)

    assert messages_of(first)[0][0] == "success"
    assert messages_of(second) == [("warning", "This form was already submitted: nothing more was done.")]
    captures = LedgerEntry.objects.filter(payment_intent_id=order.payment_intent_id, kind=LedgerEntryKind.CAPTURE)
    assert [(c.amount, c.status) for c in captures] == [(order.total, LedgerEntryStatus.SUCCEEDED)]
    order.refresh_from_db()
    assert order.payment_status == PaymentStatus.CAPTURED
    assert OrderEvent.objects.filter(order=order, type="payment_status_changed", payload__to="captured").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_double_click_on_capture_captures_once(localstripe, staff):
    order = place_order(localstripe)
    probe = Client()
    probe.force_login(staff)
    version = ledger_version(probe, order, "capture")
    data = {"amount": amount_input(order.total, "usd"), "reason": "", "ledger_version": version}
    barrier = threading.Barrier(2)
    outcomes: list[list[tuple[str, str]]] = []

    def click() -> None:
        try:
            client = Client()
            client.force_login(staff)
            barrier.wait()
            response = client.post(action_url(order, "capture"), data, follow=True)
            assert response.status_code == 200
            outcomes.append(messages_of(response))
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    levels = sorted(messages[0][0] for messages in outcomes)
    assert len(outcomes) == 2
    assert levels.count("success") == 1, outcomes  # the other: "already submitted" or "in progress"
    captures = LedgerEntry.objects.filter(payment_intent_id=order.payment_intent_id, kind=LedgerEntryKind.CAPTURE)
    assert [(c.amount, c.status) for c in captures] == [(order.total, LedgerEntryStatus.SUCCEEDED)]
    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.CAPTURED


def test_capture_beyond_capturable_is_refused_with_a_message(staff_client, placed_order):
    order = placed_order
    too_much = amount_input(order.total + 1, "usd")

    response = post(staff_client, order, "capture", amount=too_much)

    assert response.redirect_chain[-1][0] == order_url(order)
    [(level, text)] = messages_of(response)
    assert level == "error"
    assert text.startswith("Capture payment refused: The amount to capture must be between 1 and")
    assert kinds(order) == [(LedgerEntryKind.AUTHORIZATION, order.total, LedgerEntryStatus.SUCCEEDED)]
    assert gateway.payment_intent_retrieve(id=order.payment_intent_id)["status"] == "requires_capture"


def test_refund_beyond_refundable_is_refused_with_a_message(staff_client, placed_order):
    order = placed_order
    post(staff_client, order, "capture", amount=amount_input(order.total, "usd"))

    response = post(staff_client, order, "refund", amount=amount_input(order.total + 1, "usd"), reason="duplicate")

    [(level, text)] = messages_of(response)
    assert level == "error"
    assert text.startswith("Refund payment refused: The amount to refund must be between 1 and")
    assert not LedgerEntry.objects.filter(
        payment_intent_id=order.payment_intent_id, kind=LedgerEntryKind.REFUND
    ).exists()
    order.refresh_from_db()
    assert order.payment_status == PaymentStatus.CAPTURED


def test_refund_twice_in_parts_up_to_the_captured_amount(staff_client, placed_order):
    order = placed_order
    post(staff_client, order, "capture", amount=amount_input(order.total, "usd"))
    first = 1000
    post(staff_client, order, "refund", amount=amount_input(first, "usd"), reason="requested_by_customer")
    order.refresh_from_db()
    assert order.payment_status == PaymentStatus.PARTIALLY_REFUNDED

    over = post(staff_client, order, "refund", amount=amount_input(order.total - first + 1, "usd"), reason="duplicate")
    assert messages_of(over)[0][0] == "error"
    rest = post(staff_client, order, "refund", amount=amount_input(order.total - first, "usd"), reason="duplicate")

    assert messages_of(rest)[0][0] == "success"
    order.refresh_from_db()
    assert order.payment_status == PaymentStatus.REFUNDED
    assert ledger.ledger_totals(payment_intent_id=order.payment_intent_id).refunded == order.total


def test_capture_after_the_authorization_expired_is_refused_with_a_clear_message(staff_client, placed_order):
    order = placed_order
    Order.objects.filter(pk=order.pk).update(capture_before=timezone.now() - timedelta(minutes=1))

    page = staff_client.get(action_url(order, "capture"))
    assert "The authorization expired on" in page.content.decode()
    assert 'id="ck-confirm"' not in page.content.decode()  # no submit button
    assert "authorization expired" in staff_client.get(order_url(order)).content.decode()

    response = post(staff_client, order, "capture", amount=amount_input(order.total, "usd"))

    assert messages_of(response) == [
        ("error", "Capture payment refused: The authorization has expired; it can no longer be captured.")
    ]
    assert kinds(order) == [(LedgerEntryKind.AUTHORIZATION, order.total, LedgerEntryStatus.SUCCEEDED)]
    assert gateway.payment_intent_retrieve(id=order.payment_intent_id)["status"] == "requires_capture"


def test_cancel_releases_the_authorization_and_cancels_the_order(staff_client, placed_order):
    order = placed_order

    response = post(staff_client, order, "cancel", reason="customer changed their mind")

    [(level, text)] = messages_of(response)
    assert level == "success" and "Released the authorization" in text
    order.refresh_from_db()
    assert (order.status, order.payment_status, order.fulfillment_status) == ("canceled", "canceled", "canceled")
    assert kinds(order)[-1] == (LedgerEntryKind.VOID, order.total, LedgerEntryStatus.SUCCEEDED)
    assert gateway.payment_intent_retrieve(id=order.payment_intent_id)["status"] == "canceled"


def test_cancel_needs_a_reason(staff_client, placed_order):
    response = staff_client.post(
        action_url(placed_order, "cancel"),
        {"reason": "", "ledger_version": ledger_version(staff_client, placed_order, "cancel")},
    )

    assert response.status_code == 200  # the form again, with its error
    assert "This field is required." in response.content.decode()
    assert Order.objects.get(pk=placed_order.pk).payment_status == PaymentStatus.AUTHORIZED


@pytest.mark.parametrize("text", ["12.345", "abc", "-5", "0", "0.00", "1e3"])
def test_a_malformed_amount_shows_the_form_again(staff_client, placed_order, text):
    response = staff_client.post(
        action_url(placed_order, "capture"),
        {"amount": text, "ledger_version": ledger_version(staff_client, placed_order, "capture")},
    )

    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()
    assert not LedgerEntry.objects.filter(kind=LedgerEntryKind.CAPTURE).exists()


def test_partial_capture_in_yen_and_in_kuwaiti_dinar(staff_client, localstripe):
    for currency, keep in (("jpy", 200), ("kwd", 250)):
        order = place_order(localstripe, currency=currency)
        part = order.total - keep
        response = post(staff_client, order, "capture", amount=amount_input(part, currency))
        assert messages_of(response)[0] == (
            "success",
            f"Captured {format_money(part, currency)} of order #{order.display_id}. "
            f"The uncaptured {format_money(keep, currency)} was released.",
        )
        assert ledger.ledger_totals(payment_intent_id=order.payment_intent_id).captured == part


def test_a_stripe_failure_is_an_error_message_not_a_500(staff_client, localstripe):
    """An order whose PaymentIntent Stripe does not know: the service's typed error becomes a message."""
    order = OrderFactory(payment_intent_id="pi_missing_at_stripe", capture_before=timezone.now() + timedelta(days=3))
    LedgerEntry.objects.create(
        payment_intent_id=order.payment_intent_id,
        order_id=order.id,
        kind=LedgerEntryKind.AUTHORIZATION,
        amount=order.total,
        currency_code="usd",
        idempotency_key=f"pi:{order.payment_intent_id}:authorization",
    )

    response = post(staff_client, order, "capture", amount=amount_input(order.total, "usd"))

    assert response.status_code == 200
    [(level, text)] = messages_of(response)
    assert level == "error" and text.startswith("Capture payment refused:")
    row = LedgerEntry.objects.get(payment_intent_id=order.payment_intent_id, kind=LedgerEntryKind.CAPTURE)
    assert row.status == LedgerEntryStatus.FAILED  # the attempt is on record, no money moved
