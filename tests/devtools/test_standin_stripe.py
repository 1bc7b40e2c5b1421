"""The Stripe stand-in (devtools/standin/stripe.py, events.py) over real HTTP: Stripe-shaped
objects, the events Stripe would send, webhook delivery switches and control actions."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from payments import gateway
from tests.helpers import THREE_D_SECURE, VISA
from tests.plugins.localstripe import LocalStripeError

SECRET = "whsec_standin_test"
SEVEN_DAYS = 7 * 24 * 3600


def _intent(
    localstripe, amount: int = 1000, *, capture_method: str = "manual", key: str | None = None
) -> dict[str, Any]:
    key = key or f"t:pi:{uuid.uuid4().hex}"
    payment_method = localstripe.card_payment_method(VISA)
    return gateway.payment_intent_create(
        amount=amount,
        currency="usd",
        metadata={"cart_id": "cart_standin"},
        payment_method=payment_method,
        confirm=True,
        capture_method=capture_method,
        automatic_payment_methods=False,
        idempotency_key=key,
    )


def _charge(localstripe, intent: dict[str, Any]) -> dict[str, Any]:
    return localstripe.request("GET", f"/v1/charges/{gateway.latest_charge_id(intent)}")


def _types(localstripe, object_id: str) -> list[str]:
    """Event types about ``object_id``, oldest first."""
    return [e["type"] for e in reversed(localstripe.events(object_id=object_id))]


def _error(excinfo: pytest.ExceptionInfo[LocalStripeError]) -> dict[str, Any]:
    return json.loads(excinfo.value.body)["error"]


class Receiver:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def events(self, object_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.received if object_id is None or e["data"]["object"]["id"] == object_id]


@pytest.fixture
def receiver(localstripe) -> Iterator[Receiver]:
    """A webhook endpoint on 127.0.0.1 that checks Stripe's signature of every delivery."""
    sink = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            header = dict(part.split("=", 1) for part in self.headers["Stripe-Signature"].split(","))
            expected = hmac.new(SECRET.encode(), header["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
            assert abs(int(header["t"]) - time.time()) < 60
            ok = hmac.compare_digest(expected, header["v1"])
            if ok:
                with sink.lock:
                    sink.received.append(json.loads(body))
            self.send_response(200 if ok else 400)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    localstripe.register_webhook("standin", url=f"http://127.0.0.1:{server.server_port}/hook", secret=SECRET)
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


# --- Objects ----------------------------------------------------------------------------


def test_latest_charge_is_an_id_unless_expanded(localstripe):
    intent = _intent(localstripe)
    assert isinstance(intent["latest_charge"], str) and intent["latest_charge"].startswith("ch_")

    for query in ("expand[0]=latest_charge", "expand[]=latest_charge"):
        expanded = localstripe.request("GET", f"/v1/payment_intents/{intent['id']}?{query}")
        assert expanded["latest_charge"]["id"] == intent["latest_charge"]
        assert expanded["latest_charge"]["object"] == "charge"
    listed = localstripe.request("GET", "/v1/payment_intents?expand[]=data.latest_charge")
    assert {i["latest_charge"]["id"] for i in listed["data"]} == {intent["latest_charge"]}
    charges = localstripe.request("GET", f"/v1/charges?payment_intent={intent['id']}")["data"]
    assert [c["id"] for c in charges] == [intent["latest_charge"]]


def test_manual_confirm_is_an_authorization_with_capture_before(localstripe):
    before = int(time.time())
    intent = _intent(localstripe, 1000, key="t:pi:auth")
    charge = _charge(localstripe, intent)

    assert (intent["status"], intent["amount_capturable"], intent["amount_received"]) == ("requires_capture", 1000, 0)
    assert (intent["canceled_at"], intent["cancellation_reason"]) == (None, None)
    assert (charge["captured"], charge["amount_captured"], charge["amount_refunded"]) == (False, 0, 0)
    assert (charge["refunded"], charge["disputed"], charge["payment_intent"]) == (False, False, intent["id"])
    capture_before = charge["payment_method_details"]["card"]["capture_before"]
    assert before + SEVEN_DAYS <= capture_before <= int(time.time()) + SEVEN_DAYS

    assert _types(localstripe, intent["id"]) == ["payment_intent.created", "payment_intent.amount_capturable_updated"]
    assert _types(localstripe, charge["id"]) == ["charge.succeeded"]
    (updated,) = localstripe.events(type="payment_intent.amount_capturable_updated", object_id=intent["id"])
    assert updated["data"]["object"]["amount_capturable"] == 1000
    assert updated["data"]["previous_attributes"] == {"amount_capturable": 0}
    assert updated["request"]["idempotency_key"] == "t:pi:auth"
    assert updated["request"]["id"].startswith("req_")


def test_automatic_capture_sends_charge_and_intent_succeeded(localstripe):
    intent = _intent(localstripe, 700, capture_method="automatic")
    charge = _charge(localstripe, intent)
    assert (intent["status"], intent["amount_received"], charge["amount_captured"]) == ("succeeded", 700, 700)
    assert "capture_before" not in charge["payment_method_details"]["card"]
    assert _types(localstripe, intent["id"]) == ["payment_intent.created", "payment_intent.succeeded"]
    assert _types(localstripe, charge["id"]) == ["charge.succeeded"]


def test_three_d_secure_sends_requires_action_then_payment_failed(localstripe):
    payment_method = localstripe.card_payment_method(THREE_D_SECURE)
    intent = localstripe.request(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 500,
            "currency": "usd",
            "payment_method": payment_method,
            "capture_method": "manual",
            "confirm": True,
        },
    )
    assert intent["status"] == "requires_action"
    localstripe.authenticate(intent["id"], intent["client_secret"], success=False)
    assert _types(localstripe, intent["id"]) == [
        "payment_intent.created",
        "payment_intent.requires_action",
        "payment_intent.payment_failed",
    ]


def test_partial_capture_releases_the_rest_as_a_refund(localstripe):
    intent = _intent(localstripe, 1000)
    captured = gateway.payment_intent_capture(
        id=intent["id"], amount_to_capture=600, idempotency_key=f"t:cap:{intent['id']}"
    )
    charge = _charge(localstripe, captured)

    assert (captured["status"], captured["amount_received"], captured["amount_capturable"]) == ("succeeded", 600, 0)
    assert (charge["captured"], charge["amount_captured"], charge["amount_refunded"], charge["refunded"]) == (
        True,
        600,
        400,
        False,
    )
    (release,) = charge["refunds"]["data"]
    assert (release["amount"], release["metadata"], release["status"]) == (400, {}, "succeeded")
    assert release["payment_intent"] == intent["id"]
    assert _types(localstripe, charge["id"]) == ["charge.succeeded", "charge.captured", "charge.refunded"]
    assert _types(localstripe, intent["id"])[-1] == "payment_intent.succeeded"
    (captured_event,) = localstripe.events(type="charge.captured", object_id=charge["id"])
    assert captured_event["data"]["previous_attributes"]["amount_captured"] == 0


def test_refunds_are_checked_against_what_was_captured(localstripe):
    intent = _intent(localstripe, 1000)
    gateway.payment_intent_capture(id=intent["id"], amount_to_capture=600, idempotency_key=f"t:cap:{intent['id']}")

    first = gateway.refund_create(
        payment_intent=intent["id"],
        amount=100,
        reason="requested_by_customer",
        metadata={"order_id": "ord_1"},
        idempotency_key="t:re:1",
    )
    assert (first["status"], first["reason"], first["metadata"]) == (
        "succeeded",
        "requested_by_customer",
        {"order_id": "ord_1"},
    )
    with pytest.raises(LocalStripeError) as excinfo:
        localstripe.request("POST", "/v1/refunds", {"payment_intent": intent["id"], "amount": 501})
    assert (excinfo.value.status, _error(excinfo)["code"]) == (400, "amount_too_large")

    rest = localstripe.request("POST", "/v1/refunds", {"payment_intent": intent["id"]})  # no amount: what is left
    assert rest["amount"] == 500
    with pytest.raises(LocalStripeError) as excinfo:
        localstripe.request("POST", "/v1/refunds", {"payment_intent": intent["id"], "amount": 1})
    assert (excinfo.value.status, _error(excinfo)["code"]) == (400, "charge_already_refunded")

    charge = _charge(localstripe, intent)
    assert (charge["amount_refunded"], charge["refunded"]) == (1000, True)
    listed = gateway.refund_list(payment_intent=intent["id"])
    assert [r["id"] for r in listed][:2] == [rest["id"], first["id"]]  # newest first
    assert [r["amount"] for r in listed] == [500, 100, 400]
    assert _types(localstripe, first["id"]) == ["refund.created"]
    assert _types(localstripe, charge["id"]).count("charge.refunded") == 3  # the release, then two refunds


def test_refund_of_an_uncaptured_intent_is_refused(localstripe):
    intent = _intent(localstripe)
    with pytest.raises(LocalStripeError) as excinfo:
        localstripe.request("POST", "/v1/refunds", {"payment_intent": intent["id"], "amount": 100})
    assert excinfo.value.status == 400
    assert _error(excinfo)["code"] == "payment_intent_unexpected_state"
    with pytest.raises(LocalStripeError) as excinfo:
        localstripe.request("POST", "/v1/refunds", {"payment_intent": intent["id"], "reason": "because"})
    assert excinfo.value.status == 400


def test_cancel_with_a_reason_releases_the_authorization(localstripe):
    intent = _intent(localstripe, 800)
    canceled = localstripe.request(
        "POST", f"/v1/payment_intents/{intent['id']}/cancel", {"cancellation_reason": "requested_by_customer"}
    )
    charge = _charge(localstripe, intent)
    assert (canceled["status"], canceled["cancellation_reason"], canceled["amount_capturable"]) == (
        "canceled",
        "requested_by_customer",
        0,
    )
    assert isinstance(canceled["canceled_at"], int)
    assert (charge["captured"], charge["amount_refunded"], charge["refunded"]) == (False, 800, True)
    assert _types(localstripe, intent["id"])[-1] == "payment_intent.canceled"
    assert _types(localstripe, charge["id"])[-1] == "charge.refunded"

    with pytest.raises(LocalStripeError) as excinfo:
        localstripe.request("POST", f"/v1/payment_intents/{intent['id']}/cancel", {})
    assert _error(excinfo)["code"] == "payment_intent_unexpected_state"
    with pytest.raises(LocalStripeError):
        localstripe.request(
            "POST", f"/v1/payment_intents/{_intent(localstripe)['id']}/cancel", {"cancellation_reason": "x"}
        )


# --- Control actions ----------------------------------------------------------------------


def test_refund_fail_gives_the_money_back_to_the_charge(localstripe):
    intent = _intent(localstripe, 1000, capture_method="automatic")
    refund = localstripe.request("POST", "/v1/refunds", {"payment_intent": intent["id"], "amount": 1000})
    assert _charge(localstripe, intent)["refunded"] is True

    failed = localstripe.refund_fail(refund["id"])
    charge = _charge(localstripe, intent)
    assert (failed["status"], failed["failure_reason"]) == ("failed", "expired_or_canceled_card")
    assert (charge["amount_refunded"], charge["refunded"]) == (0, False)
    assert _types(localstripe, refund["id"]) == [
        "refund.created",
        "refund.failed",
        "refund.updated",
        "charge.refund.updated",
    ]
    with pytest.raises(LocalStripeError):
        localstripe.refund_fail(refund["id"])


def test_dispute_won(localstripe):
    intent = _intent(localstripe, 1000, capture_method="automatic")
    dispute = localstripe.dispute_open(payment_intent=intent["id"])
    assert dispute["id"].startswith("dp_")
    assert (dispute["amount"], dispute["reason"], dispute["status"]) == (1000, "fraudulent", "needs_response")
    assert (dispute["charge"], dispute["payment_intent"]) == (intent["latest_charge"], intent["id"])
    assert dispute["is_charge_refundable"] is False
    assert dispute["evidence_details"]["due_by"] > time.time()
    assert [t["amount"] for t in dispute["balance_transactions"]] == [-1000]
    assert _charge(localstripe, intent)["disputed"] is True
    with pytest.raises(LocalStripeError) as excinfo:  # an open dispute: no refund
        localstripe.request("POST", "/v1/refunds", {"payment_intent": intent["id"]})
    assert _error(excinfo)["code"] == "charge_disputed"

    assert localstripe.dispute_update(dispute["id"])["status"] == "under_review"
    won = localstripe.dispute_close(dispute["id"], outcome="won")
    assert won["status"] == "won"
    assert [t["amount"] for t in won["balance_transactions"]] == [-1000, 1000]
    assert localstripe.request("GET", f"/v1/disputes/{dispute['id']}")["status"] == "won"
    listed = localstripe.request("GET", f"/v1/disputes?payment_intent={intent['id']}")["data"]
    assert [d["id"] for d in listed] == [dispute["id"]]
    assert _types(localstripe, dispute["id"]) == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.updated",
        "charge.dispute.funds_reinstated",
        "charge.dispute.closed",
    ]
    # each event is a snapshot of its time
    created = localstripe.events(type="charge.dispute.created", object_id=dispute["id"])[0]
    assert created["data"]["object"]["status"] == "needs_response"
    assert len(created["data"]["object"]["balance_transactions"]) == 1


def test_dispute_lost_with_an_amount(localstripe):
    intent = _intent(localstripe, 1000, capture_method="automatic")
    dispute = localstripe.dispute_open(payment_intent=intent["id"], amount=300, reason="product_not_received")
    lost = localstripe.dispute_close(dispute["id"], outcome="lost")
    assert (lost["status"], lost["amount"], lost["reason"]) == ("lost", 300, "product_not_received")
    assert _types(localstripe, dispute["id"]) == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.closed",
    ]
    with pytest.raises(LocalStripeError):
        localstripe.dispute_close(dispute["id"], outcome="won")


def test_authorization_expire(localstripe):
    intent = _intent(localstripe, 900)
    expired = localstripe.authorization_expire(intent["id"])
    charge = _charge(localstripe, intent)
    assert (expired["status"], expired["cancellation_reason"]) == ("canceled", "automatic")
    assert (charge["refunded"], charge["amount_refunded"], charge["captured"]) == (True, 900, False)
    assert _types(localstripe, charge["id"])[-1] == "charge.expired"
    assert _types(localstripe, intent["id"])[-1] == "payment_intent.canceled"
    (canceled,) = localstripe.events(type="payment_intent.canceled", object_id=intent["id"])
    assert canceled["request"] is None  # nobody asked: Stripe did it


def test_authorization_expires_when_the_clock_passes_capture_before(localstripe):
    old = _intent(localstripe, 900, key="t:pi:old")
    localstripe.clock_advance(SEVEN_DAYS - 3600)
    young = _intent(localstripe, 500, key="t:pi:young")
    assert gateway.payment_intent_retrieve(id=old["id"])["status"] == "requires_capture"

    localstripe.clock_advance(3601)
    old_now = gateway.payment_intent_retrieve(id=old["id"])
    assert (old_now["status"], old_now["cancellation_reason"]) == ("canceled", "automatic")
    assert gateway.payment_intent_retrieve(id=young["id"])["status"] == "requires_capture"
    assert _types(localstripe, old["latest_charge"])[-1] == "charge.expired"


def test_dashboard_actions_carry_no_idempotency_key_of_ours(localstripe):
    intent = _intent(localstripe, 1000)
    captured = localstripe.dashboard_capture(intent["id"], amount=700)
    assert (captured["status"], captured["amount_received"]) == ("succeeded", 700)
    refund = localstripe.dashboard_refund(intent["id"], amount=200, reason="duplicate")
    assert (refund["amount"], refund["reason"], refund["metadata"]) == (200, "duplicate", {})
    assert localstripe.dashboard_refund(intent["id"])["amount"] == 500  # the rest of the captured amount

    (event,) = localstripe.events(type="refund.created", object_id=refund["id"])
    assert event["request"]["idempotency_key"] is None and event["request"]["id"].startswith("req_")

    other = _intent(localstripe, 300, key="t:pi:2")
    assert localstripe.dashboard_cancel(other["id"])["status"] == "canceled"
    assert _types(localstripe, other["id"])[-1] == "payment_intent.canceled"
    with pytest.raises(LocalStripeError):
        localstripe.dashboard_capture(other["id"])


def test_control_routes_need_no_api_key(localstripe):
    request = urllib.request.Request(localstripe.base_url + "/_control/webhooks/held")  # noqa: S310 - local
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        assert json.loads(response.read())["data"] == []


# --- Webhook delivery ---------------------------------------------------------------------


def test_immediate_delivery_is_signed_and_needs_no_second(localstripe, receiver):
    started = time.monotonic()
    intent = _intent(localstripe, 1000, capture_method="automatic")
    localstripe.webhooks_drain()
    assert time.monotonic() - started < 1.0
    types = [e["type"] for e in receiver.events(intent["id"])]
    assert sorted(types) == ["payment_intent.created", "payment_intent.succeeded"]
    event = receiver.events(intent["id"])[0]
    assert event["pending_webhooks"] >= 1 and event["data"]["object"]["id"] == intent["id"]


def test_hold_then_release_in_reverse_order(localstripe, receiver):
    localstripe.webhooks_delivery(mode="hold")
    intent = _intent(localstripe, 1000)
    gateway.payment_intent_capture(id=intent["id"], idempotency_key=f"t:cap:{intent['id']}")
    localstripe.webhooks_drain()
    assert receiver.events(intent["id"]) == []

    held = [h for h in localstripe.webhooks_held() if h["object_id"] == intent["id"]]
    assert [h["type"] for h in held] == [
        "payment_intent.created",
        "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded",
    ]
    results = localstripe.webhooks_release(order="reverse")
    assert all(r["status_codes"] == [200] for r in results)
    assert [e["type"] for e in receiver.events(intent["id"])] == [h["type"] for h in reversed(held)]
    assert localstripe.webhooks_held() == []


def test_release_can_drop_and_duplicate(localstripe, receiver):
    localstripe.webhooks_delivery(mode="hold")
    intent = _intent(localstripe, 1000)
    held = {h["type"]: h["id"] for h in localstripe.webhooks_held() if h["object_id"] == intent["id"]}
    results = localstripe.webhooks_release(duplicate=True, drop=[held["payment_intent.created"]])
    by_id = {r["id"]: r for r in results}
    assert by_id[held["payment_intent.created"]]["dropped"] is True
    assert by_id[held["payment_intent.amount_capturable_updated"]]["status_codes"] == [200, 200]
    assert [e["type"] for e in receiver.events(intent["id"])] == ["payment_intent.amount_capturable_updated"] * 2


def test_drop_held_and_duplicate_and_drop_switches(localstripe, receiver):
    localstripe.webhooks_delivery(mode="hold")
    _intent(localstripe)
    assert localstripe.webhooks_drop_held()["dropped"] >= 3
    assert localstripe.webhooks_held() == []

    localstripe.webhooks_delivery(duplicate=True)
    duplicated = _intent(localstripe, key="t:pi:dup")
    localstripe.webhooks_drain()
    assert [e["type"] for e in receiver.events(duplicated["id"])].count("payment_intent.created") == 2

    localstripe.webhooks_delivery(drop=1, types=["payment_intent.amount_capturable_updated"])
    dropped = _intent(localstripe, key="t:pi:drop")
    localstripe.webhooks_drain()
    assert [e["type"] for e in receiver.events(dropped["id"])] == ["payment_intent.created"]
    # dropped deliveries are still events at Stripe
    assert "payment_intent.amount_capturable_updated" in _types(localstripe, dropped["id"])


def test_delay_and_drain(localstripe, receiver):
    localstripe.webhooks_delivery(delay=0.3)
    intent = _intent(localstripe, capture_method="automatic")
    assert receiver.events(intent["id"]) == []
    localstripe.webhooks_drain()
    assert len(receiver.events(intent["id"])) == 2


def test_reset_puts_delivery_back_to_immediate(localstripe, receiver):
    localstripe.webhooks_delivery(mode="hold", duplicate=True)
    _intent(localstripe)
    localstripe._reset_stripe()
    assert localstripe.webhooks_held() == []
    intent = _intent(localstripe, key="t:pi:after")
    localstripe.webhooks_drain()
    assert len(receiver.events(intent["id"])) == 2  # created + amount_capturable_updated, once each
