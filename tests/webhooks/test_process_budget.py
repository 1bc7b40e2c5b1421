"""Issue 13: the inbox's own cost per event (claim, settle, coalesce), and coalescing per PaymentIntent.

The statements the inbox itself spends on an event: one ``UPDATE ... RETURNING`` to claim it, one
``UPDATE`` to settle it, and, after a reconcile, one ``UPDATE`` that settles the other waiting events
of the same PaymentIntent that reconcile covered (``handlers.COALESCIBLE``), so their own messages
stop at the claim without a Stripe call.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.models import Order
from tests.webhooks.conftest import build_event, make_cart, pay_cart, shop_for
from webhooks import handlers, services, tasks
from webhooks.models import WebhookEvent, WebhookEventStatus

pytestmark = pytest.mark.django_db

Status = WebhookEventStatus
INBOX_TABLE = WebhookEvent._meta.db_table


def _row(event_type: str, obj: dict, *, payment_intent_id: str = "", age: float = 0.0) -> WebhookEvent:
    event = build_event(event_type, obj)
    row = WebhookEvent.objects.create(
        stripe_event_id=event["id"],
        type=event_type,
        object_id=obj["id"],
        payment_intent_id=payment_intent_id,
        payload=json.dumps(event),
    )
    if age:
        WebhookEvent.objects.filter(pk=row.pk).update(received_at=timezone.now() - timedelta(seconds=age))
        row.refresh_from_db()
    return row


def test_process_ignored_event_costs_two_statements_through_the_task(django_assert_num_queries):
    """The task (eager here, as the worker runs it) reads nothing of its own: claim, settle."""
    row = _row("customer.created", {"id": "cus_budget", "object": "customer"})
    with django_assert_num_queries(2):  # UPDATE ... RETURNING, UPDATE
        tasks.webhook_event_process_task.apply(args=[row.id])
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == (
        Status.PROCESSED,
        1,
        "ignored: no handler for customer.created",
    )


def test_process_returns_the_row_as_stored(django_assert_num_queries):
    row = _row("customer.created", {"id": "cus_stored", "object": "customer"})
    processed = services.webhook_event_process(event_id=row.id)
    stored = WebhookEvent.objects.get(pk=row.pk)
    assert processed is not None
    fields = ("status", "attempts", "processing_started_at", "processed_at", "last_error", "next_attempt_at")
    assert {f: getattr(processed, f) for f in fields} == {f: getattr(stored, f) for f in fields}


def test_process_a_finished_event_again_costs_two_statements_and_changes_nothing(django_assert_num_queries):
    row = _row("customer.created", {"id": "cus_twice", "object": "customer"})
    services.webhook_event_process(event_id=row.id)
    with django_assert_num_queries(2):  # the claim updates nothing, one SELECT says why
        assert services.webhook_event_process(event_id=row.id) is None
    assert WebhookEvent.objects.get(pk=row.pk).attempts == 1


def test_claim_takes_over_an_expired_lease_only():
    row = _row("customer.created", {"id": "cus_lease", "object": "customer"})
    WebhookEvent.objects.filter(pk=row.pk).update(status=Status.PROCESSING, processing_started_at=timezone.now())
    assert services.webhook_event_process(event_id=row.id) is None  # held
    expired = timezone.now() - timedelta(seconds=3600)
    WebhookEvent.objects.filter(pk=row.pk).update(processing_started_at=expired, attempts=1)
    processed = services.webhook_event_process(event_id=row.id)
    assert processed is not None and (processed.status, processed.attempts) == (Status.PROCESSED, 2)


def _paid_with_order(localstripe) -> tuple[dict, str]:
    shop = shop_for("usd")
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(stock=5), 1)]))
    intent = localstripe.request("GET", f"/v1/payment_intents/{paid.payment_intent_id}")
    first = _row("payment_intent.amount_capturable_updated", intent, payment_intent_id=intent["id"])
    services.webhook_event_process(event_id=first.id)
    assert Order.objects.filter(payment_intent_id=intent["id"]).count() == 1
    return intent, intent["id"]


def test_reconciling_event_spends_three_inbox_statements(localstripe):
    intent, payment_intent_id = _paid_with_order(localstripe)
    row = _row("payment_intent.succeeded", intent, payment_intent_id=payment_intent_id)
    with CaptureQueriesContext(connection) as queries:
        services.webhook_event_process(event_id=row.id)
    inbox = [q["sql"].split()[0] for q in queries.captured_queries if f'"{INBOX_TABLE}"' in q["sql"]]
    assert inbox == ["UPDATE", "UPDATE", "UPDATE"]  # claim, settle, coalesce (nothing to coalesce)


def test_waiting_events_of_the_intent_are_coalesced_into_one_reconcile(localstripe, django_assert_num_queries):
    intent, payment_intent_id = _paid_with_order(localstripe)
    charge = {"id": "ch_coalesce", "object": "charge", "payment_intent": payment_intent_id}
    # a backlog: three events of the intent waiting since before the claim, one of another type family
    waiting = _row("payment_intent.succeeded", intent, payment_intent_id=payment_intent_id, age=5)
    also = _row("payment_intent.processing", intent, payment_intent_id=payment_intent_id, age=4)
    charge_event = _row("charge.succeeded", charge, payment_intent_id=payment_intent_id, age=4)
    other_intent = _row("payment_intent.succeeded", intent | {"id": "pi_other"}, payment_intent_id="pi_other", age=5)
    processing = _row("payment_intent.amount_capturable_updated", intent, payment_intent_id=payment_intent_id, age=3)
    localstripe.requests_clear()

    services.webhook_event_process(event_id=processing.id)

    for row in (waiting, also):
        row.refresh_from_db()
        assert row.status == Status.PROCESSED
        assert row.last_error == f"coalesced: reconciled with {processing.stripe_event_id} ({processing.id})"
        assert row.attempts == 0 and row.processed_at is not None
    for row in (charge_event, other_intent):  # a charge event mirrors its snapshot; another intent
        row.refresh_from_db()
        assert row.status == Status.RECEIVED
    retrieves = len(localstripe.requests_log(path=f"/v1/payment_intents/{payment_intent_id}", method="GET"))
    assert retrieves >= 1
    localstripe.requests_clear()

    with django_assert_num_queries(2):  # their queued messages stop at the claim
        assert services.webhook_event_process(event_id=waiting.id) is None
    assert localstripe.requests_log() == []  # and never call Stripe
    assert Order.objects.filter(payment_intent_id=payment_intent_id).count() == 1


def test_an_event_received_after_the_claim_is_not_coalesced(localstripe):
    """It may announce a change the reconcile's read came too early for: it gets its own reconcile."""
    intent, payment_intent_id = _paid_with_order(localstripe)
    processing = _row("payment_intent.succeeded", intent, payment_intent_id=payment_intent_id, age=3)
    late = _row("payment_intent.processing", intent, payment_intent_id=payment_intent_id)  # within the margin
    services.webhook_event_process(event_id=processing.id)
    late.refresh_from_db()
    assert late.status == Status.RECEIVED
    assert services.webhook_event_process(event_id=late.id).last_error.startswith("unchanged")


def test_coalescible_types_are_the_intents_own_reconcile_only():
    assert handlers.COALESCIBLE <= handlers.RECONCILING
    assert "payment_intent.succeeded" in handlers.COALESCIBLE
    assert "payment_intent.canceled" not in handlers.COALESCIBLE  # its handler alerts staff
    assert not {t for t in handlers.COALESCIBLE if not t.startswith("payment_intent.")}
    assert not {t for t in handlers.RECONCILING if t.startswith("charge.dispute.")}
