"""The webhook inbox admin: dead letters with their error, read-only payloads, replay (permission-gated)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.admin.conftest import grant, messages_of
from tests.factories import UserFactory
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db

LIST = "/admin/webhooks/webhookevent/"


def stored(stripe_event_id: str, *, status: str, type: str = "customer.created", error: str = "") -> WebhookEvent:
    payload = {
        "id": stripe_event_id,
        "object": "event",
        "type": type,
        "livemode": False,
        "created": 1767225600,
        "data": {"object": {"id": "cus_stripe_1", "object": "customer", "email": "<b>ada</b>@example.com"}},
    }
    return WebhookEvent.objects.create(
        stripe_event_id=stripe_event_id,
        type=type,
        status=status,
        attempts=9 if status == "failed" else 1,
        last_error=error,
        payload=json.dumps(payload),
        object_id="cus_stripe_1",
    )


def client_for(*codenames: str) -> Client:
    user = grant(UserFactory(is_staff=True), *codenames)
    client = Client()
    client.force_login(user)
    return client


def test_dead_letters_are_listed_with_their_error(staff_client):
    dead = stored("evt_dead", status="failed", error="ProviderUnavailable: The payment provider is unavailable.")
    stored("evt_ok", status="processed")

    response = staff_client.get(LIST + "?inbox=dead")

    assert [e.pk for e in response.context["cl"].result_list] == [dead.pk]
    assert "ProviderUnavailable: The payment provider is unavailable." in response.content.decode()


def test_the_event_page_is_read_only_with_a_pretty_payload(staff_client):
    event = stored("evt_dead", status="failed", error="boom")

    html = staff_client.get(f"{LIST}{event.pk}/change/").content.decode()

    assert "      &quot;email&quot;: &quot;&lt;b&gt;ada&lt;/b&gt;@example.com&quot;," in html  # indented JSON, escaped
    assert "Replay event" in html
    assert 'name="_save"' not in html
    assert staff_client.post(f"{LIST}{event.pk}/change/", {"status": "processed"}).status_code == 403
    assert staff_client.get(f"{LIST}add/").status_code == 403
    assert staff_client.post(f"{LIST}{event.pk}/delete/").status_code == 403


def test_replay_puts_a_dead_letter_back_in_the_queue_and_it_is_processed(
    staff_client, django_capture_on_commit_callbacks, settings
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    event = stored("evt_dead", status="failed", error="boom")

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(f"{LIST}{event.pk}/replay/", follow=True)

    assert messages_of(response) == [("success", "evt_dead queued for processing again.")]
    event.refresh_from_db()
    assert event.replayed_at is not None
    assert event.status == "processed"  # the eager task ran the handler (unknown type: acknowledged)


def test_replay_of_an_event_still_waiting_is_refused_with_a_message(staff_client):
    event = stored("evt_wait", status="received")

    response = staff_client.post(f"{LIST}{event.pk}/replay/", follow=True)

    [(level, text)] = messages_of(response)
    assert level == "error" and text.startswith("Replay refused:")
    assert WebhookEvent.objects.get(pk=event.pk).status == "received"


def test_replay_needs_the_change_permission_and_a_post(django_capture_on_commit_callbacks):
    event = stored("evt_dead", status="failed", error="boom")
    viewer = client_for("webhooks.view_webhookevent")

    assert "Replay event" not in viewer.get(f"{LIST}{event.pk}/change/").content.decode()
    assert viewer.post(f"{LIST}{event.pk}/replay/").status_code == 403
    list_page = viewer.get(LIST)
    assert list_page.context["action_form"] is None  # no bulk replay action offered
    replayer = client_for("webhooks.view_webhookevent", "webhooks.change_webhookevent")
    assert replayer.get(f"{LIST}{event.pk}/replay/").status_code == 405
    assert WebhookEvent.objects.get(pk=event.pk).status == "failed"


def test_bulk_replay_action(staff_client, django_capture_on_commit_callbacks):
    first = stored("evt_a", status="failed", error="x")
    second = stored("evt_b", status="processed")
    waiting = stored("evt_c", status="received")

    with django_capture_on_commit_callbacks(execute=False):
        response = staff_client.post(
            LIST, {"action": "replay", "_selected_action": [first.pk, second.pk, waiting.pk]}, follow=True
        )

    texts = [text for _, text in messages_of(response)]
    assert "2 event(s) queued for processing." in texts
    assert any(text.startswith("evt_c:") for text in texts)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"received"}


def test_the_event_page_never_shows_a_client_secret(staff_client):
    """Issue 10 row 11e: a row stored before redaction still shows no client_secret in the admin."""
    payload = {
        "id": "evt_old",
        "object": "event",
        "type": "payment_intent.succeeded",
        "livemode": False,
        "data": {
            "object": {"id": "pi_old", "object": "payment_intent", "client_secret": "pi_old_secret_SHOULDNOTLEAK"}
        },
    }
    event = WebhookEvent.objects.create(
        stripe_event_id="evt_old",
        type="payment_intent.succeeded",
        status="processed",
        attempts=1,
        payload=json.dumps(payload),
        object_id="pi_old",
        payment_intent_id="pi_old",
    )

    html = staff_client.get(f"{LIST}{event.pk}/change/").content.decode()

    assert "SHOULDNOTLEAK" not in html
    assert "[redacted]" in html
