"""The inbox state machine: process once, retry, dead letter, replay, sweep; and /metrics."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from common.errors import NotFound
from tests.factories.orders import PaymentSessionFactory
from tests.webhooks.conftest import build_event, deliver, stripe_example
from webhooks import selectors, services
from webhooks.handlers import PermanentEventError
from webhooks.models import WebhookEvent, WebhookEventStatus

pytestmark = pytest.mark.django_db

Status = WebhookEventStatus


def _store(raw_client: Any, event: dict[str, Any]) -> WebhookEvent:
    assert deliver(raw_client, event).status_code == 200
    return WebhookEvent.objects.get(stripe_event_id=event["id"])


def test_inbox_unknown_type_processed_once(raw_client, webhook_secret, django_capture_on_commit_callbacks):
    event = build_event("customer.created", {"id": "cus_x", "object": "customer"})
    with django_capture_on_commit_callbacks(execute=True):  # eager Celery: the task runs on commit
        assert deliver(raw_client, event).status_code == 200
    row = WebhookEvent.objects.get()
    assert (row.status, row.attempts) == (Status.PROCESSED, 1)
    assert row.last_error == "ignored: no handler for customer.created"
    assert row.processed_at is not None

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert deliver(raw_client, event).json()["duplicate"] is True
    assert callbacks == []
    assert services.webhook_event_process(event_id=row.id) is None  # a stray task does nothing
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.PROCESSED, 1)


def test_inbox_failure_retried_then_dead_lettered_then_replayed(raw_client, webhook_secret, localstripe):
    # Our session for an intent Stripe does not know: retrieving it fails (404) on every attempt.
    PaymentSessionFactory(payment_intent_id="pi_unknown_to_stripe")
    obj = stripe_example("payment_intent") | {"id": "pi_unknown_to_stripe", "status": "succeeded"}
    row = _store(raw_client, build_event("payment_intent.succeeded", obj))

    with pytest.raises(NotFound):
        services.webhook_event_process(event_id=row.id, last_attempt=False, retry_in=30)
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.RECEIVED, 1)
    assert row.last_error.startswith("NotFound:")
    assert row.next_attempt_at is not None and row.next_attempt_at > timezone.now() + timedelta(seconds=25)

    with pytest.raises(NotFound):
        services.webhook_event_process(event_id=row.id, last_attempt=True)
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.FAILED, 2)
    assert row.failed_at is not None
    assert list(selectors.webhook_events_dead_lettered()) == [row]
    assert services.webhook_event_process(event_id=row.id) is None  # dead letters wait for staff

    services.webhook_event_replay(event_id=row.stripe_event_id, actor_user_id="cus_staff")
    row.refresh_from_db()
    assert row.status == Status.RECEIVED and row.replayed_at is not None


def test_inbox_malformed_event_dead_lettered_at_once(raw_client, webhook_secret):
    event = build_event("charge.refunded", {"object": "charge"})  # no id: nothing to re-read
    row = _store(raw_client, event)
    with pytest.raises(PermanentEventError):
        services.webhook_event_process(event_id=row.id, last_attempt=False)
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.FAILED, 1)


def test_inbox_replay_refused_while_pending(raw_client, webhook_secret):
    row = _store(raw_client, build_event("customer.created", {"id": "cus_y", "object": "customer"}))
    with pytest.raises(services.WebhookEventStateError):
        services.webhook_event_replay(event_id=row.id)


def test_inbox_processed_event_can_be_replayed(raw_client, webhook_secret, django_capture_on_commit_callbacks):
    row = _store(raw_client, build_event("customer.created", {"id": "cus_z", "object": "customer"}))
    services.webhook_event_process(event_id=row.id)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.webhook_event_replay(event_id=row.id)
    assert len(callbacks) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.PROCESSED, 2)


def test_inbox_processing_claim_excludes_a_second_worker(raw_client, webhook_secret):
    row = _store(raw_client, build_event("customer.created", {"id": "cus_w", "object": "customer"}))
    WebhookEvent.objects.filter(pk=row.pk).update(status=Status.PROCESSING, processing_started_at=timezone.now())
    assert services.webhook_event_process(event_id=row.id) is None  # another worker holds the lease
    WebhookEvent.objects.filter(pk=row.pk).update(processing_started_at=timezone.now() - timedelta(hours=1))
    assert services.webhook_event_process(event_id=row.id).status == Status.PROCESSED  # lease expired: taken over


def test_inbox_livemode_mismatch_ignored(raw_client, webhook_secret):
    event = build_event("payment_intent.succeeded", stripe_example("payment_intent"))
    event["livemode"] = True
    row = _store(raw_client, event)
    processed = services.webhook_event_process(event_id=row.id)
    assert processed.status == Status.PROCESSED
    assert processed.last_error.startswith("ignored: livemode=True")


def test_inbox_sweep_requeues_stuck_events_only(raw_client, webhook_secret, django_capture_on_commit_callbacks):
    now = timezone.now()
    fresh = _store(raw_client, build_event("customer.created", {"id": "cus_1", "object": "customer"}))
    never_queued = _store(raw_client, build_event("customer.created", {"id": "cus_2", "object": "customer"}))
    retry_due_later = _store(raw_client, build_event("customer.created", {"id": "cus_3", "object": "customer"}))
    worker_died = _store(raw_client, build_event("customer.created", {"id": "cus_4", "object": "customer"}))
    WebhookEvent.objects.filter(pk=never_queued.pk).update(updated_at=now - timedelta(hours=1))
    WebhookEvent.objects.filter(pk=retry_due_later.pk).update(
        updated_at=now - timedelta(hours=1), next_attempt_at=now + timedelta(minutes=5)
    )
    WebhookEvent.objects.filter(pk=worker_died.pk).update(
        status=Status.PROCESSING, processing_started_at=now - timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.webhook_events_sweep(now=now) == 2
    assert len(callbacks) == 2
    assert fresh.status == Status.RECEIVED


def test_inbox_counts_and_backlog(raw_client, webhook_secret):
    for n in range(3):
        _store(raw_client, build_event("customer.created", {"id": f"cus_{n}", "object": "customer"}))
    first = WebhookEvent.objects.order_by("received_at").first()
    services.webhook_event_process(event_id=first.id)
    assert selectors.webhook_inbox_counts() == {"received": 2, "processing": 0, "processed": 1, "failed": 0}
    assert selectors.webhook_inbox_oldest_pending_age() >= 0


def test_metrics_endpoint_exposes_webhook_and_business_metrics(
    raw_client, webhook_secret, django_capture_on_commit_callbacks
):
    from common import metrics

    processed = _store(raw_client, build_event("customer.created", {"id": "cus_m0", "object": "customer"}))
    services.webhook_event_process(event_id=processed.id)
    _store(raw_client, build_event("customer.created", {"id": "cus_m1", "object": "customer"}))
    before = metrics.CAPTURED_AMOUNT.labels("usd")._value.get()
    with django_capture_on_commit_callbacks(execute=True):
        metrics.record_capture(currency="usd", amount=1234)  # counted once the transaction commits
    assert metrics.CAPTURED_AMOUNT.labels("usd")._value.get() == before + 1234
    response = raw_client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'checkout_webhook_events_received_total{type="customer.created"}' in text
    assert "checkout_webhook_inbox_backlog 1.0" in text
    assert 'checkout_webhook_inbox_events{status="received"} 1.0' in text
    assert "checkout_webhook_processing_seconds_bucket" in text
    assert 'checkout_captured_amount_minor_total{currency="usd"}' in text
    for name in (
        "checkout_payment_sessions_created_total",
        "checkout_payments_authorized_total",
        "checkout_payments_declined_total",
        "checkout_orders_created_total",
        "checkout_refunds_total",
        "checkout_refunded_amount_minor_total",
    ):
        assert f"# TYPE {name} counter" in text


def test_metrics_endpoint_openmetrics_negotiated(raw_client, webhook_secret):
    response = raw_client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")


def test_metrics_endpoint_token(raw_client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    denied = raw_client.get("/metrics")
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == "not_authenticated"
    assert raw_client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert raw_client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).status_code == 200


def test_inbox_payload_round_trips(raw_client, webhook_secret):
    event = build_event("charge.dispute.created", stripe_example("dispute"))
    row = _store(raw_client, event)
    assert json.loads(row.payload) == event


def test_inbox_query_budget_receive_and_process(raw_client, webhook_secret, django_assert_num_queries):
    """Receiving is one insert attempt (+ savepoints); processing an ignored type touches only its row."""
    event = build_event("customer.created", {"id": "cus_q", "object": "customer"})
    with django_assert_num_queries(4):  # (savepoint) INSERT ... ON CONFLICT DO NOTHING, SELECT (release)
        assert deliver(raw_client, event).status_code == 200
    with django_assert_num_queries(4):  # the duplicate: the same two statements, nothing inserted
        assert deliver(raw_client, event).json()["duplicate"] is True
    row = WebhookEvent.objects.get()
    with django_assert_num_queries(2):  # UPDATE ... RETURNING (the claim), UPDATE (the settle)
        services.webhook_event_process(event_id=row.id)


def test_inbox_purge_keeps_recent_and_dead_letters(raw_client, webhook_secret, settings):
    settings.WEBHOOK_RETENTION = timedelta(days=90)
    old_processed = _store(raw_client, build_event("customer.created", {"id": "cus_p1", "object": "customer"}))
    old_failed = _store(raw_client, build_event("customer.created", {"id": "cus_p2", "object": "customer"}))
    recent = _store(raw_client, build_event("customer.created", {"id": "cus_p3", "object": "customer"}))
    long_ago = timezone.now() - timedelta(days=91)
    WebhookEvent.objects.filter(pk=old_processed.pk).update(status=Status.PROCESSED, received_at=long_ago)
    WebhookEvent.objects.filter(pk=old_failed.pk).update(status=Status.FAILED, received_at=long_ago)
    WebhookEvent.objects.filter(pk=recent.pk).update(status=Status.PROCESSED)
    assert services.webhook_events_purge(batch_size=1) == 1
    assert set(WebhookEvent.objects.values_list("pk", flat=True)) == {old_failed.pk, recent.pk}


def test_inbox_stores_payment_intent_events_without_the_client_secret(raw_client, webhook_secret):
    """Issue 10 row 11e: the inbox row (and so the admin) never holds a PaymentIntent's client_secret."""
    intent = stripe_example("payment_intent")
    intent.update(id="pi_secret_test", client_secret="pi_secret_test_secret_SHOULDNOTLEAK")
    nested = {"object": "charge", "id": "ch_1", "payment_intent": {**intent, "id": "pi_nested"}}
    event = build_event("payment_intent.succeeded", intent)
    event["data"]["previous_attributes"] = {"items": [nested]}

    assert deliver(raw_client, event).status_code == 200

    row = WebhookEvent.objects.get(stripe_event_id=event["id"])
    assert "SHOULDNOTLEAK" not in row.payload
    stored = json.loads(row.payload)
    assert stored["data"]["object"]["client_secret"] == "[redacted]"
    assert stored["data"]["previous_attributes"]["items"][0]["payment_intent"]["client_secret"] == "[redacted]"
    assert stored["data"]["object"]["amount"] == intent["amount"] and row.payment_intent_id == "pi_secret_test"
