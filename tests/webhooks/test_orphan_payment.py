"""Gap B: a second paid PaymentIntent for a cart that already has its order (real localstripe).

E.g. the shopper's browser confirmed a replaced session's intent anyway. Its money belongs to
no order: the webhook (and the reconciliation sweep) cancel it (manual capture) or refund it
(automatic capture), file a CheckoutIncident, alert staff, and leave the cart's one order alone.
"""

from __future__ import annotations

import logging
import threading
import time
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from orders.models import CheckoutIncident, Order, OrderEvent
from payments import gateway, ledger
from payments.models import LedgerEntry, PaymentSession, PaymentSessionStatus
from tests.factories.orders import PaymentSessionFactory
from tests.helpers import VISA
from tests.orders.conftest import complete
from tests.webhooks.conftest import make_cart, pay_cart, shop_for
from webhooks import reconciliation
from webhooks.models import WebhookEventStatus


def _completed_cart_with_orphan(localstripe: Any, *, capture_method: str) -> tuple[Any, Order, dict[str, Any]]:
    """A cart completed with its PaymentIntent, and a second intent of the same cart, paid too.

    The second one's session is the replaced (inactive) row payment_session_upsert leaves behind.
    """
    shop = shop_for("usd")
    cart_id = make_cart(shop, [(shop.variant(stock=10), 2)])
    paid = pay_cart(localstripe, cart_id, capture_method=capture_method)
    assert complete(APIClient(), cart_id, paid.payment_intent_id).status_code == 201
    order = Order.objects.get(cart_id=cart_id)
    orphan = gateway.payment_intent_create(
        amount=paid.total,
        currency="usd",
        metadata={"cart_id": cart_id},
        capture_method=capture_method,  # type: ignore[arg-type]
        payment_method=localstripe.card_payment_method(VISA),
        automatic_payment_methods=False,
        confirm=True,
        idempotency_key=f"test:{cart_id}:orphan",
    )
    assert orphan["status"] == ("requires_capture" if capture_method == "manual" else "succeeded")
    PaymentSessionFactory(
        cart_id=cart_id,
        payment_intent_id=orphan["id"],
        amount=paid.total,
        status=PaymentSessionStatus.AUTHORIZED if capture_method == "manual" else PaymentSessionStatus.SUCCEEDED,
        is_active=False,
    )
    return paid, order, orphan


def _state() -> tuple[Any, ...]:
    return (
        sorted(Order.objects.values_list("id", "payment_intent_id", "status", "payment_status")),
        sorted(LedgerEntry.objects.values_list("idempotency_key", "kind", "status", "amount")),
        sorted(CheckoutIncident.objects.values_list("kind", "payment_intent_id", "resolution")),
        OrderEvent.objects.count(),
        sorted(PaymentSession.objects.values_list("payment_intent_id", "is_active", "status")),
    )


@pytest.mark.django_db
def test_orphan_authorization_is_canceled_by_the_webhook(localstripe, send, caplog):
    paid, order, orphan = _completed_cart_with_orphan(localstripe, capture_method="manual")

    with caplog.at_level(logging.INFO):
        row = send("payment_intent.amount_capturable_updated", orphan)

    assert row.status == WebhookEventStatus.PROCESSED
    assert row.last_error == f"orphan_released {orphan['id']} order={order.id} resolution=payment_canceled"
    assert gateway.payment_intent_retrieve(id=orphan["id"])["status"] == "canceled"
    assert gateway.payment_intent_retrieve(id=paid.payment_intent_id)["status"] == "requires_capture"  # untouched
    assert Order.objects.get() == order
    order.refresh_from_db()
    assert (order.payment_intent_id, order.payment_status, order.status) == (
        paid.payment_intent_id,
        "authorized",
        "pending",
    )
    incident = CheckoutIncident.objects.get()
    assert (incident.kind, incident.cart_id, incident.payment_intent_id, incident.resolution, incident.amount) == (
        "orphan_payment",
        order.cart_id,
        orphan["id"],
        "payment_canceled",
        paid.total,
    )
    keys = set(
        LedgerEntry.objects.filter(payment_intent_id=orphan["id"]).values_list("idempotency_key", "kind", "order_id")
    )
    assert keys == {
        (f"pi:{orphan['id']}:authorization", "authorization", ""),
        (f"pi:{orphan['id']}:cancel:orphan", "void", ""),  # the claim row, keyed like the Stripe call
    }
    totals = ledger.ledger_totals(payment_intent_id=orphan["id"])
    assert (totals.authorized, totals.voided, totals.capturable) == (paid.total, paid.total, 0)
    session = PaymentSession.objects.get(payment_intent_id=orphan["id"])
    assert (session.is_active, session.status) == (False, PaymentSessionStatus.CANCELED)
    event = OrderEvent.objects.get(order=order, type="orphan_payment_released")
    assert event.payload["payment_intent_id"] == orphan["id"] and event.payload["resolution"] == "payment_canceled"
    alerts = [r for r in caplog.records if r.getMessage().startswith("staff_alert kind=orphan_payment ")]
    assert len(alerts) == 1 and alerts[0].levelno == logging.ERROR
    assert f"payment_intent_id={orphan['id']}" in alerts[0].getMessage()

    # duplicates and later events of the orphan change nothing
    before = _state()
    send("payment_intent.amount_capturable_updated", orphan)
    send("payment_intent.canceled", gateway.payment_intent_retrieve(id=orphan["id"]))
    assert _state() == before
    assert CheckoutIncident.objects.count() == 1


@pytest.mark.django_db
def test_orphan_payment_with_automatic_capture_is_refunded_by_the_webhook(localstripe, send):
    paid, order, orphan = _completed_cart_with_orphan(localstripe, capture_method="automatic")

    row = send("payment_intent.succeeded", orphan)

    assert row.last_error == f"orphan_released {orphan['id']} order={order.id} resolution=payment_refunded"
    charge = gateway.payment_intent_retrieve(id=orphan["id"])["latest_charge"]
    assert charge["amount_refunded"] == paid.total
    refunds = gateway.refund_list(payment_intent=orphan["id"])
    assert len(refunds) == 1 and refunds[0]["metadata"] == {"cart_id": order.cart_id, "reason": "orphan_payment"}
    assert Order.objects.count() == 1
    order.refresh_from_db()
    assert (order.payment_intent_id, order.payment_status) == (paid.payment_intent_id, "captured")
    assert gateway.payment_intent_retrieve(id=paid.payment_intent_id)["latest_charge"]["amount_refunded"] == 0
    assert CheckoutIncident.objects.get().resolution == "payment_refunded"
    totals = ledger.ledger_totals(payment_intent_id=orphan["id"])
    assert (totals.captured, totals.refunded) == (paid.total, paid.total)

    before = _state()
    send("payment_intent.succeeded", orphan)
    send("charge.refunded", gateway.payment_intent_retrieve(id=orphan["id"])["latest_charge"])
    assert _state() == before
    assert len(gateway.refund_list(payment_intent=orphan["id"])) == 1  # refunded once


@pytest.mark.django_db
def test_reconcile_command_releases_an_orphan_once(localstripe):
    """No webhook arrives: the sweep finds the orphan's session and releases it; a second run changes nothing."""
    paid, order, orphan = _completed_cart_with_orphan(localstripe, capture_method="manual")

    out = StringIO()
    call_command("reconcile_payments", grace_seconds=0, stdout=out, stderr=StringIO())

    assert f"fixed: orphan_released {orphan['id']} order={order.id} resolution=payment_canceled" in out.getvalue()
    assert gateway.payment_intent_retrieve(id=orphan["id"])["status"] == "canceled"
    assert Order.objects.count() == 1
    before = _state()
    again = StringIO()
    call_command("reconcile_payments", grace_seconds=0, stdout=again, stderr=StringIO())
    assert "nothing to fix" in again.getvalue()
    assert _state() == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_concurrent_reconciles_of_one_orphan_release_it_once(localstripe):
    """Several workers handle events of the same orphan at once: one incident, one refund, one order."""
    paid, order, orphan = _completed_cart_with_orphan(localstripe, capture_method="automatic")
    workers = 6
    barrier = threading.Barrier(workers)
    outcomes: list[Any] = []
    errors: list[BaseException] = []
    retried: list[str] = []

    def work() -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(400):  # retry transient errors like the Celery task does
                try:
                    outcomes.append(reconciliation.payment_intent_reconcile(payment_intent_id=orphan["id"]))
                    return
                except Exception as exc:
                    if not reconciliation.is_transient(exc):
                        raise
                    retried.append(getattr(exc, "code", ""))
                    time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(o.action for o in outcomes) == ["orphan_released"] + ["unchanged"] * (workers - 1)
    assert set(retried) <= {"payment_release_in_progress", "cart_completing"}
    incident = CheckoutIncident.objects.get()
    assert incident.resolution == "payment_refunded"
    assert sum(int(r["amount"]) for r in gateway.refund_list(payment_intent=orphan["id"])) == paid.total
    assert Order.objects.count() == 1
    assert ledger.ledger_totals(payment_intent_id=orphan["id"]).refunded == paid.total
    assert OrderEvent.objects.filter(order=order, type__startswith="orphan_payment").count() == 1


@pytest.mark.django_db
def test_orphan_release_claim_in_flight_is_transient_and_a_stale_one_is_taken_over(localstripe):
    """A worker claimed the refund, reached Stripe and died: others retry, then take over without a second refund."""
    from datetime import timedelta

    from django.utils import timezone

    from payments.ledger import LedgerEntryData

    _, order, orphan = _completed_cart_with_orphan(localstripe, capture_method="automatic")
    key = f"pi:{orphan['id']}:refund:orphan"
    claim = LedgerEntryData(
        payment_intent_id=orphan["id"],
        kind="refund",
        amount=orphan["amount"],
        currency_code="usd",
        idempotency_key=key,
        status="pending",
    )
    ledger.ledger_entries_record(entries=[claim])
    refund = gateway.refund_create(payment_intent=orphan["id"], idempotency_key=key)  # ... and the process died

    with pytest.raises(Exception) as in_flight:
        reconciliation.payment_intent_reconcile(payment_intent_id=orphan["id"])
    assert reconciliation.is_transient(in_flight.value)
    assert in_flight.value.code == "payment_release_in_progress"
    assert not CheckoutIncident.objects.exists()

    LedgerEntry.objects.filter(idempotency_key=key).update(updated_at=timezone.now() - timedelta(minutes=10))
    outcome = reconciliation.payment_intent_reconcile(payment_intent_id=orphan["id"])

    assert (outcome.action, outcome.detail) == ("orphan_released", "resolution=payment_refunded")
    assert [r["id"] for r in gateway.refund_list(payment_intent=orphan["id"])] == [refund["id"]]  # no second refund
    row = LedgerEntry.objects.get(idempotency_key=key)
    assert (row.status, row.stripe_object_id) == ("succeeded", refund["id"])
    assert ledger.ledger_totals(payment_intent_id=orphan["id"]).refunded == orphan["amount"]
    assert CheckoutIncident.objects.get().resolution == "payment_refunded"
    assert OrderEvent.objects.filter(order=order, type="orphan_payment_released").count() == 1
