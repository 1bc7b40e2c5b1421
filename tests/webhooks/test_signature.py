"""POST /webhooks/stripe: only correctly signed, fresh events are stored; everything else is a 400."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from django.urls import Resolver404, get_resolver, resolve

from tests.webhooks.conftest import OLD_WEBHOOK_SECRET, WEBHOOK_PATH, build_event, deliver, encode, sign, stripe_example
from webhooks.models import WebhookEvent, WebhookEventStatus

pytestmark = pytest.mark.django_db


def _event(event_type: str = "charge.refunded") -> dict[str, Any]:
    return build_event(event_type, stripe_example("charge"))


def _assert_rejected(response: Any) -> None:
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "type": "invalid_request_error",
            "code": "invalid_signature",
            "message": "The webhook signature is missing, invalid or too old.",
            "param": None,
        }
    }
    assert WebhookEvent.objects.count() == 0


def test_signature_valid_event_stored_and_enqueued_on_commit(
    raw_client, webhook_secret, django_capture_on_commit_callbacks
):
    event = _event()
    # a client_secret would be redacted before storing (test_inbox.py); without one, the bytes are kept
    event["data"]["object"]["source"].pop("client_secret", None)
    payload = encode(event)
    with django_capture_on_commit_callbacks() as callbacks:
        response = deliver(raw_client, payload)
    assert response.status_code == 200
    assert response.json() == {"received": True, "id": event["id"], "duplicate": False}
    row = WebhookEvent.objects.get()
    assert (row.stripe_event_id, row.type, row.status, row.attempts) == (
        event["id"],
        "charge.refunded",
        WebhookEventStatus.RECEIVED,
        0,
    )
    assert row.payload.encode() == payload  # the raw body, byte for byte
    assert row.object_id == event["data"]["object"]["id"]
    assert len(callbacks) == 1  # processing is queued only once the row is committed


def test_signature_missing_header_rejected(raw_client, webhook_secret):
    _assert_rejected(deliver(raw_client, _event(), signature=""))


def test_signature_garbage_header_rejected(raw_client, webhook_secret):
    _assert_rejected(deliver(raw_client, _event(), signature="not-a-signature"))


def test_signature_wrong_secret_rejected(raw_client, webhook_secret):
    _assert_rejected(deliver(raw_client, _event(), secret="whsec_attacker_guess"))


def test_signature_tampered_body_rejected(raw_client, webhook_secret):
    event = _event()
    payload = encode(event)
    header = sign(payload)
    event["data"]["object"]["amount_refunded"] = 999_999
    _assert_rejected(deliver(raw_client, encode(event), signature=header))


def test_signature_stale_timestamp_rejected(raw_client, webhook_secret):
    _assert_rejected(deliver(raw_client, _event(), timestamp=int(time.time()) - 301))


def test_signature_timestamp_within_tolerance_accepted(raw_client, webhook_secret):
    assert deliver(raw_client, _event(), timestamp=int(time.time()) - 280).status_code == 200
    assert deliver(raw_client, _event(), timestamp=int(time.time()) + 280).status_code == 200  # clock skew


def test_signature_timestamp_beyond_tolerance_in_the_future_rejected(raw_client, webhook_secret):
    """A signature dated ahead of our clock would stay "fresh" for longer than the tolerance."""
    _assert_rejected(deliver(raw_client, _event(), timestamp=int(time.time()) + 360))


def test_signature_replayed_old_delivery_rejected(raw_client, webhook_secret):
    """A captured delivery (body + header) replayed an hour later is refused, though its HMAC is right."""
    event = _event()
    payload = encode(event)
    captured_header = sign(payload, timestamp=int(time.time()) - 3600)
    _assert_rejected(deliver(raw_client, payload, signature=captured_header))


def test_signature_redelivered_event_acknowledged_not_requeued(
    raw_client, webhook_secret, django_capture_on_commit_callbacks
):
    event = _event()
    assert deliver(raw_client, event).status_code == 200
    with django_capture_on_commit_callbacks() as callbacks:
        response = deliver(raw_client, event)  # Stripe retries: same event id, fresh signature
    assert response.status_code == 200
    assert response.json()["duplicate"] is True
    assert WebhookEvent.objects.count() == 1
    assert callbacks == []


def test_signature_debug_header_bypass_never_accepted(raw_client, webhook_secret, settings):
    """dj-stripe's view trusts X-Djstripe-Webhook-Secret under DEBUG; ours ignores it."""
    settings.DEBUG = True
    attacker_secret = "whsec_attacker_chosen"
    response = deliver(
        raw_client, _event(), secret=attacker_secret, headers={"X-Djstripe-Webhook-Secret": attacker_secret}
    )
    _assert_rejected(response)


def test_signature_debug_header_bypass_without_configured_secret(raw_client, settings):
    settings.DEBUG = True
    settings.STRIPE_WEBHOOK_SECRET = ""
    settings.STRIPE_WEBHOOK_SECRETS_EXTRA = []
    attacker_secret = "whsec_attacker_chosen"
    response = deliver(
        raw_client, _event(), secret=attacker_secret, headers={"X-Djstripe-Webhook-Secret": attacker_secret}
    )
    _assert_rejected(response)


def test_signature_no_secret_configured_fails_closed(raw_client, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    settings.STRIPE_WEBHOOK_SECRETS_EXTRA = []
    _assert_rejected(deliver(raw_client, _event(), secret=""))


def test_signature_rotation_both_secrets_accepted(raw_client, settings):
    settings.STRIPE_WEBHOOK_SECRET = "whsec_test_new_secret_after_rotation"
    settings.STRIPE_WEBHOOK_SECRETS_EXTRA = [OLD_WEBHOOK_SECRET]
    assert deliver(raw_client, _event(), secret="whsec_test_new_secret_after_rotation").status_code == 200
    assert deliver(raw_client, _event(), secret=OLD_WEBHOOK_SECRET).status_code == 200
    _assert_rejected_extra = deliver(raw_client, _event(), secret="whsec_retired_long_ago")
    assert _assert_rejected_extra.status_code == 400
    assert WebhookEvent.objects.count() == 2


def test_signature_rotation_header_with_two_signatures(raw_client, webhook_secret):
    """During a rotation in the dashboard Stripe sends one v1 per active secret."""
    payload = encode(_event())
    ts = int(time.time())
    other = sign(payload, "whsec_the_other_endpoint_secret", ts).split(",")[1]
    header = f"{sign(payload, webhook_secret, ts)},{other}"
    assert deliver(raw_client, payload, signature=header).status_code == 200


def test_signature_valid_but_not_an_event_rejected(raw_client, webhook_secret):
    _assert_rejected(deliver(raw_client, json.dumps({"object": "charge", "id": "ch_1"}).encode()))
    _assert_rejected(deliver(raw_client, b"[1, 2, 3]"))
    _assert_rejected(deliver(raw_client, b"\xff\xfe not json"))


def test_webhook_wrong_method_has_error_shape(raw_client, webhook_secret):
    response = raw_client.get(WEBHOOK_PATH)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_djstripe_webhook_urls_not_mounted():
    with pytest.raises(Resolver404):
        resolve(f"/stripe/webhook/{uuid.uuid4()}/")

    def callbacks(patterns: list[Any]) -> list[Any]:
        found = []
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                found += callbacks(pattern.url_patterns)
            else:
                found.append(pattern.callback)
        return found

    from djstripe.views import ProcessWebhookView

    views = callbacks(get_resolver().url_patterns)
    assert not [v for v in views if getattr(v, "view_class", None) is ProcessWebhookView]
    assert not [v for v in views if getattr(v, "__module__", "") == "djstripe.views"]
    assert resolve(WEBHOOK_PATH).func.__module__ == "webhooks.views"
