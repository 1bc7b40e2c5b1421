"""Honest payment numbers (issue 11 item 6): every try to pay is one counted outcome.

Shoppers pay over the store API against the Stripe stand-in: cards refused when attached,
declined at the server-side confirm, declined in the browser (Stripe.js), 3-D Secure passed,
failed and abandoned, retried with another card or not. Stripe's own events are then delivered
to the webhook endpoint (signed, as Stripe sends them), delivered again and replayed by staff.
The expected outcomes are written out by hand, one per try, and the dashboard (the staff page
and its figures) and ``/metrics`` must show exactly those counts; the replays change nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import Counter
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from backoffice import dashboard
from tests.factories import UserFactory, VariantFactory
from tests.helpers import DECLINED_AT_ATTACH, DECLINED_AT_CONFIRM, THREE_D_SECURE, VISA
from tests.plugins.localstripe import LocalStripeError
from webhooks import services as webhook_services
from webhooks.models import WebhookEvent, WebhookEventStatus

pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "whsec_test_decline_counts_3b1f0c"
METRICS_TOKEN = "scrape-token-decline-counts"
DASHBOARD_URL = "/admin/orders/order/dashboard/"
PAGE_QUERIES = 15  # the dashboard's budget, as in tests/admin/test_dashboard.py

# (stage, outcome, code) of every try below, in order, written out by hand.
ATTACH_DECLINED = ("attach", "declined", "card_declined")
CONFIRM_DECLINED = ("confirm", "declined", "card_declined")
THREE_DS_FAILED = ("confirm", "declined", "payment_intent_authentication_failure")
SUCCEEDED = ("confirm", "succeeded", "")
REQUIRES_ACTION = ("confirm", "requires_action", "")


def card_token(server: Any, number: str) -> str:
    """``stripe.createToken(card)`` in the browser (publishable key only)."""
    body = {"card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}, "key": "pk_test_browser"}
    return server.request("POST", "/v1/tokens", body)["id"]


def browser_confirm(server: Any, payment_intent_id: str, number: str) -> int:
    """Stripe.js ``confirmCardPayment`` against the stand-in; the HTTP status it got."""
    method = server.card_payment_method(number)
    server.request("POST", f"/v1/payment_intents/{payment_intent_id}", {"payment_method": method})
    try:
        server.request("POST", f"/v1/payment_intents/{payment_intent_id}/confirm", {})
    except LocalStripeError as exc:
        return exc.status
    return 200


def signed_delivery(client: Client, event: dict[str, Any]) -> int:
    payload = json.dumps(event).encode()
    ts = int(time.time())
    signature = hmac.new(WEBHOOK_SECRET.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    response = client.generic(
        "POST",
        "/webhooks/stripe",
        payload,
        content_type="application/json",
        headers={"Stripe-Signature": f"t={ts},v1={signature}"},
    )
    return response.status_code


def scrape(client: Client) -> dict[str, Counter]:
    """``/metrics`` (with the scrape token): attempts by (stage, outcome), declines by code (usd)."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    attempts: Counter = Counter()
    declines: Counter = Counter()
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            if sample.name == "checkout_payment_attempts_total":
                attempts[(sample.labels["stage"], sample.labels["outcome"])] += int(sample.value)
            elif sample.name == "checkout_payments_declined_total" and sample.labels["currency"] == "usd":
                declines[sample.labels["code"]] += int(sample.value)
    return {"attempts": attempts, "declines": declines}


def delta(after: dict[str, Counter], before: dict[str, Counter]) -> dict[str, Counter]:
    return {key: after[key] - before[key] for key in after}  # Counter subtraction keeps positive counts only


def expected_metrics(outcomes: list[tuple[str, str, str]]) -> dict[str, Counter]:
    return {
        "attempts": Counter((stage, outcome) for stage, outcome, _ in outcomes),
        "declines": Counter(code for _, outcome, code in outcomes if outcome == "declined"),
    }


def expected_figures(outcomes: list[tuple[str, str, str]], *, unfinished: int) -> dict[str, Any]:
    succeeded = sum(outcome == "succeeded" for _, outcome, _ in outcomes)
    declined = sum(outcome == "declined" for _, outcome, _ in outcomes)
    attempts = succeeded + declined
    return {
        "counts": (succeeded, declined, 0, unfinished),
        "rate": dashboard.percent(succeeded, attempts),
        "note": f"{succeeded} succeeded of {attempts} attempts; {declined} declined",
        "reasons": sorted(Counter((stage, code) for stage, outcome, code in outcomes if outcome == "declined").items()),
    }


def assert_dashboard_shows(client: Client, expected: dict[str, Any], django_assert_num_queries: Any) -> None:
    data = dashboard.dashboard_build(period=dashboard.period_last_days(1))
    p = data.payments
    assert (p.succeeded, p.declined, p.errors, p.unfinished) == expected["counts"]
    assert sorted(((r.stage, r.code), r.count) for r in data.decline_reasons) == expected["reasons"]
    with django_assert_num_queries(PAGE_QUERIES):
        response = client.get(DASHBOARD_URL + "?days=1")
    assert response.status_code == 200
    card = next(c for c in response.context["data"].sections[0].cards if c.label == "Payment success rate")
    assert (card.value, card.note) == (expected["rate"], expected["note"])
    html = response.content.decode()
    assert expected["rate"] in html and expected["note"] in html


@pytest.fixture
def staff_client(db: Any) -> Client:
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_order", content_type__app_label="orders"))
    client = Client()
    client.force_login(user)
    return client


def test_dashboard_and_metrics_count_every_attempt_once(
    shop, fake_stripe, settings, staff_client, django_capture_on_commit_callbacks, django_assert_num_queries
):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_WEBHOOK_SECRETS_EXTRA = []
    settings.METRICS_TOKEN = METRICS_TOKEN
    server = fake_stripe.server
    raw = Client()
    before = scrape(raw)
    outcomes: list[tuple[str, str, str]] = []
    intents: list[str] = []

    def pay(cart: dict[str, Any], **body: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            response = shop.pay(cart["id"], **body)
        if response.status_code in (200, 201):
            intents.append(response.json()["payment_session"]["data"]["payment_intent_id"])
        return response

    def complete(cart: dict[str, Any], payment_intent_id: str) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return shop.client.post(
                f"/store/carts/{cart['id']}/complete", {"payment_intent_id": payment_intent_id}, format="json"
            )

    def session(response: Any) -> dict[str, Any]:
        assert response.status_code in (200, 201), response.content
        return response.json()["payment_session"]

    variant = VariantFactory(stock=50, prices={"usd": 1990})

    # 1. Card refused when attached (no session is written), then another card: paid.
    cart = shop.cart((variant, 1))
    assert pay(cart, card_token=card_token(server, DECLINED_AT_ATTACH)).status_code == 402
    paid = session(pay(cart, card_token=card_token(server, VISA)))
    assert paid["status"] == "authorized"
    assert complete(cart, paid["data"]["payment_intent_id"]).status_code == 201
    outcomes += [ATTACH_DECLINED, SUCCEEDED]

    # 2. Declined at the server-side confirm, retried with another card (the declined session is canceled).
    cart = shop.cart((variant, 1))
    assert pay(cart, card_token=card_token(server, DECLINED_AT_CONFIRM)).status_code == 402
    intents.append(server.events(type="payment_intent.payment_failed")[0]["data"]["object"]["id"])
    paid = session(pay(cart, card_token=card_token(server, VISA)))
    assert complete(cart, paid["data"]["payment_intent_id"]).status_code == 201
    outcomes += [CONFIRM_DECLINED, SUCCEEDED]

    # 3. Paid the first time.
    cart = shop.cart((variant, 2))
    paid = session(pay(cart, card_token=card_token(server, VISA)))
    assert complete(cart, paid["data"]["payment_intent_id"]).status_code == 201
    outcomes += [SUCCEEDED]

    # 4. Declined, then abandoned.
    cart = shop.cart((variant, 1))
    assert pay(cart, card_token=card_token(server, DECLINED_AT_CONFIRM)).status_code == 402
    intents.append(server.events(type="payment_intent.payment_failed")[0]["data"]["object"]["id"])
    outcomes += [CONFIRM_DECLINED]

    # 5. Declined in the browser (Stripe.js); complete is refused; paid with another card on a fresh intent.
    cart = shop.cart((variant, 1))
    first = session(pay(cart))["data"]["payment_intent_id"]
    assert browser_confirm(server, first, DECLINED_AT_CONFIRM) == 402
    assert complete(cart, first).status_code == 402
    second = session(pay(cart))["data"]["payment_intent_id"]
    assert second != first
    assert browser_confirm(server, second, VISA) == 200
    assert complete(cart, second).status_code == 201
    outcomes += [CONFIRM_DECLINED, SUCCEEDED]

    # 6. 3-D Secure passed in the browser, then complete.
    cart = shop.cart((variant, 1))
    pending = session(pay(cart, card_token=card_token(server, THREE_D_SECURE)))
    assert pending["status"] == "requires_action"
    server.authenticate(pending["data"]["payment_intent_id"], pending["data"]["client_secret"])
    assert complete(cart, pending["data"]["payment_intent_id"]).status_code == 201
    outcomes += [REQUIRES_ACTION, SUCCEEDED]

    # 7. 3-D Secure failed, then another card.
    cart = shop.cart((variant, 1))
    pending = session(pay(cart, card_token=card_token(server, THREE_D_SECURE)))
    server.authenticate(pending["data"]["payment_intent_id"], pending["data"]["client_secret"], success=False)
    paid = session(pay(cart, card_token=card_token(server, VISA)))
    assert complete(cart, paid["data"]["payment_intent_id"]).status_code == 201
    outcomes += [REQUIRES_ACTION, THREE_DS_FAILED, SUCCEEDED]

    # 8. 3-D Secure asked and never answered: no outcome (counted apart, not in the rate).
    cart = shop.cart((variant, 1))
    assert session(pay(cart, card_token=card_token(server, THREE_D_SECURE)))["status"] == "requires_action"
    outcomes += [REQUIRES_ACTION]

    # 9. Declined in the browser and abandoned: only Stripe's events will tell us.
    cart = shop.cart((variant, 1))
    abandoned = session(pay(cart))["data"]["payment_intent_id"]
    assert browser_confirm(server, abandoned, DECLINED_AT_CONFIRM) == 402
    browser_only = [CONFIRM_DECLINED]

    # Before Stripe's events: everything but the browser decline nobody reported to us yet.
    assert_dashboard_shows(staff_client, expected_figures(outcomes, unfinished=1), django_assert_num_queries)
    assert delta(scrape(raw), before) == expected_metrics(outcomes)

    # Stripe's events, every one about our intents (charge.failed and payment_intent.payment_failed
    # report the same decline), delivered in the order Stripe sent them.
    events = [e for e in reversed(server.events()) if _intent_of(e) in intents]
    assert {"charge.failed", "payment_intent.payment_failed", "payment_intent.amount_capturable_updated"} <= {
        e["type"] for e in events
    }
    for event in events:
        with django_capture_on_commit_callbacks(execute=True):
            assert signed_delivery(raw, event) == 200
    assert not WebhookEvent.objects.exclude(status=WebhookEventStatus.PROCESSED).exists()
    outcomes += browser_only
    expected = expected_figures(outcomes, unfinished=1)
    assert expected["counts"] == (6, 6, 0, 1) and expected["rate"] == "50.0 %"
    assert_dashboard_shows(staff_client, expected, django_assert_num_queries)
    assert delta(scrape(raw), before) == expected_metrics(outcomes)

    # Stripe delivers some again, and staff replay every processed event: nothing more is counted.
    for event in events[:5]:
        with django_capture_on_commit_callbacks(execute=True):
            assert signed_delivery(raw, event) == 200
    for row in WebhookEvent.objects.order_by("received_at"):
        with django_capture_on_commit_callbacks(execute=True):
            webhook_services.webhook_event_replay(event_id=row.id)
    assert not WebhookEvent.objects.exclude(status=WebhookEventStatus.PROCESSED).exists()
    assert WebhookEvent.objects.filter(replayed_at__isnull=False).count() == len(events)
    assert_dashboard_shows(staff_client, expected, django_assert_num_queries)
    assert delta(scrape(raw), before) == expected_metrics(outcomes)


def _intent_of(event: dict[str, Any]) -> str:
    obj = (event.get("data") or {}).get("object") or {}
    return obj.get("id") if obj.get("object") == "payment_intent" else obj.get("payment_intent") or ""
