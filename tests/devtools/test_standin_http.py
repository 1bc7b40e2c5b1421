"""The stand-in's HTTP layer (devtools/standin/http.py) over real HTTP: Idempotency-Key as Stripe
documents it, injected faults, the request log.

Calls go through ``payments.gateway`` (stripe-python, with its own retries) where the point is
what our client sees, and through raw urllib where headers and exact bodies matter.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
import stripe

from common.errors import ApplicationError, PaymentError, ProviderUnavailable
from payments import gateway
from tests.helpers import VISA
from tests.plugins.localstripe import TEST_API_KEY, LocalStripeError

REFUNDS = "^/v1/refunds$"
INTENTS = "^/v1/payment_intents$"


class Answer:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


def _send(
    localstripe: Any,
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    api_key: str | None = TEST_API_KEY,
    timeout: float = 10,
) -> Answer:
    """A form-encoded request, as stripe-python sends it; HTTP errors are answers too."""
    body = urllib.parse.urlencode(params).encode() if params is not None else None
    request = urllib.request.Request(localstripe.base_url + path, data=body, method=method)  # noqa: S310 - local
    if body is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    if api_key is not None:
        request.add_header("Authorization", f"Bearer {api_key}")
    if key is not None:
        request.add_header("Idempotency-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers, exc.read())


def _create_intent(amount: int = 1000, *, key: str = "test:pi:v1") -> dict[str, Any]:
    return gateway.payment_intent_create(
        amount=amount,
        currency="usd",
        metadata={"cart_id": "cart_test"},
        capture_method="manual",
        automatic_payment_methods=False,
        idempotency_key=key,
    )


def _charged_intent(localstripe: Any, amount: int = 1000) -> dict[str, Any]:
    return gateway.payment_intent_create(
        amount=amount,
        currency="usd",
        metadata={},
        capture_method="automatic",
        payment_method=localstripe.card_payment_method(VISA),
        automatic_payment_methods=False,
        confirm=True,
        idempotency_key="test:charged",
    )


def _intent_ids(localstripe: Any) -> list[str]:
    return [intent["id"] for intent in localstripe.request("GET", "/v1/payment_intents")["data"]]


def _no_retries(settings: Any) -> None:
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    gateway.reset_client()


# --- Idempotency-Key ---------------------------------------------------------------


def test_idempotency_same_key_replays_the_first_answer(localstripe):
    params = {"amount": 1000, "currency": "usd", "payment_method_types[]": "card"}
    first = _send(localstripe, "POST", "/v1/payment_intents", params, key="k:create")
    again = _send(localstripe, "POST", "/v1/payment_intents", params, key="k:create")

    assert (first.status, again.status) == (200, 200)
    assert again.body == first.body
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.headers["Idempotency-Key"] == again.headers["Idempotency-Key"] == "k:create"
    assert again.headers["Original-Request"] == first.headers["Request-Id"]
    assert _intent_ids(localstripe) == [first.json()["id"]]


def test_idempotency_gateway_repeat_returns_the_same_object(localstripe):
    first = _create_intent(1000, key="cart:cart_1:pi:v1")
    second = _create_intent(1000, key="cart:cart_1:pi:v1")

    assert second["id"] == first["id"]
    assert _intent_ids(localstripe) == [first["id"]]
    log = localstripe.requests_log(path=INTENTS, method="POST")
    assert [(e["replayed"], e["executed"]) for e in log] == [(False, True), (True, False)]
    assert localstripe.executed(path=INTENTS) == 1


def test_idempotency_other_parameters_are_refused(localstripe):
    intent = _create_intent(1000, key="k:create")

    with pytest.raises(ApplicationError) as caught:
        _create_intent(1500, key="k:create")
    assert isinstance(caught.value.__cause__, stripe.IdempotencyError)
    answer = _send(localstripe, "POST", "/v1/payment_intents", {"amount": 1000, "currency": "usd"}, key="k:create")
    other_path = _send(localstripe, "POST", f"/v1/payment_intents/{intent['id']}", {"amount": 1000}, key="k:create")

    assert answer.status == other_path.status == 400
    assert answer.json() == {
        "error": {
            "type": "idempotency_error",
            "message": "Keys for idempotent requests can only be used with the same parameters they were first "
            "used with. Try using a key other than 'k:create' if you meant to execute a different request.",
        }
    }
    assert _intent_ids(localstripe) == [intent["id"]]


def test_idempotency_keys_are_scoped_by_api_key(localstripe):
    params = {"amount": 1000, "currency": "usd"}
    mine = _send(localstripe, "POST", "/v1/payment_intents", params, key="k:shared")
    theirs = _send(localstripe, "POST", "/v1/payment_intents", params, key="k:shared", api_key="sk_test_other")

    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]


def test_idempotency_key_expires_after_24_hours(localstripe):
    first = _create_intent(1000, key="k:create")
    localstripe.clock_advance(24 * 3600 - 60)
    assert _create_intent(1000, key="k:create")["id"] == first["id"]

    localstripe.clock_advance(61)
    later = _create_intent(1000, key="k:create")

    assert later["id"] != first["id"]
    assert localstripe.executed(path=INTENTS) == 2


def test_idempotency_executed_errors_are_saved_but_unauthorized_is_not(localstripe):
    # localstripe's own validation error: the endpoint ran, so Stripe stores the answer.
    bad = {"amount": 1000, "currency": "usd", "description": "no"}
    first = _send(localstripe, "POST", "/v1/payment_intents", bad, key="k:bad")
    again = _send(localstripe, "POST", "/v1/payment_intents", bad, key="k:bad")
    assert (first.status, again.status, again.headers.get("Idempotent-Replayed")) == (400, 400, "true")

    params = {"amount": 1000, "currency": "usd"}
    unauthorized = _send(localstripe, "POST", "/v1/payment_intents", params, key="k:auth", api_key=None)
    authorized = _send(localstripe, "POST", "/v1/payment_intents", params, key="k:auth", api_key=TEST_API_KEY)
    assert (unauthorized.status, authorized.status) == (401, 200)
    assert "Idempotent-Replayed" not in authorized.headers


def test_idempotency_delete_is_replayed(localstripe):
    customer = gateway.customer_create(email="ada@example.com", metadata={}, idempotency_key="k:cu")
    first = _send(localstripe, "DELETE", f"/v1/customers/{customer['id']}", key="k:del")
    again = _send(localstripe, "DELETE", f"/v1/customers/{customer['id']}", key="k:del")
    unkeyed = _send(localstripe, "DELETE", f"/v1/customers/{customer['id']}")

    assert (first.status, again.status, again.headers.get("Idempotent-Replayed")) == (200, 200, "true")
    assert unkeyed.status == 404  # without a key, the delete runs again


def test_idempotency_store_flush_forgets_keys(localstripe):
    first = _create_intent(1000, key="k:create")
    localstripe.flush()

    assert _create_intent(1000, key="k:create")["id"] != first["id"]


def test_idempotency_concurrent_same_key_is_409_in_use(localstripe):
    # The first request is held 1 s while it executes (a slow Stripe); its key is in use meanwhile.
    localstripe.fault(path=INTENTS, status="timeout", when="before", latency=1.0)
    params = {"amount": 1000, "currency": "usd"}
    answers: list[Answer] = []

    def send_first() -> None:
        answers.append(_send(localstripe, "POST", "/v1/payment_intents", params, key="k:slow"))

    first = threading.Thread(target=send_first)
    first.start()
    time.sleep(0.3)

    concurrent = _send(localstripe, "POST", "/v1/payment_intents", params, key="k:slow")
    first.join(timeout=5)
    after = _send(localstripe, "POST", "/v1/payment_intents", params, key="k:slow")

    assert concurrent.status == 409
    assert concurrent.json()["error"]["type"] == "idempotency_error"
    assert concurrent.json()["error"]["code"] == "idempotency_key_in_use"
    assert [a.status for a in answers] == [200]
    assert after.headers["Idempotent-Replayed"] == "true" and after.body == answers[0].body
    assert localstripe.executed(path=INTENTS) == 1


# --- Faults --------------------------------------------------------------------------


def test_fault_before_executes_nothing_and_the_retry_executes_once(localstripe, settings):
    _no_retries(settings)
    intent = _charged_intent(localstripe)
    fault_id = localstripe.fault(path=REFUNDS, status=500, when="before")

    with pytest.raises(ProviderUnavailable):
        gateway.refund_create(payment_intent=intent["id"], amount=300, idempotency_key="k:r1")
    assert localstripe.executed(path=REFUNDS) == 0
    assert gateway.refund_list(payment_intent=intent["id"]) == []

    refund = gateway.refund_create(payment_intent=intent["id"], amount=300, idempotency_key="k:r1")

    assert [r["id"] for r in gateway.refund_list(payment_intent=intent["id"])] == [refund["id"]]
    log = localstripe.requests_log(path=REFUNDS, method="POST")
    assert [(e["status"], e["fault"], e["executed"]) for e in log] == [(500, fault_id, False), (200, None, True)]
    assert [f["fired"] for f in localstripe.faults()] == [1]


def test_fault_before_is_absorbed_by_stripe_python_retry_with_the_same_key(localstripe):
    intent = _charged_intent(localstripe)
    localstripe.fault(path=REFUNDS, status=503, when="before")

    refund = gateway.refund_create(payment_intent=intent["id"], amount=300, idempotency_key="k:r1")

    log = localstripe.requests_log(path=REFUNDS, method="POST")
    tries = [(e["idempotency_key"], e["status"], e["executed"]) for e in log]
    assert tries == [("k:r1", 503, False), ("k:r1", 200, True)]
    assert [r["id"] for r in gateway.refund_list(payment_intent=intent["id"])] == [refund["id"]]


def test_fault_after_lost_answer_is_replayed_on_retry(localstripe):
    intent = _charged_intent(localstripe)
    localstripe.fault(path=REFUNDS, status=500, when="after")

    refund = gateway.refund_create(payment_intent=intent["id"], amount=300, idempotency_key="k:r1")

    assert refund["amount"] == 300
    assert [r["id"] for r in gateway.refund_list(payment_intent=intent["id"])] == [refund["id"]]
    log = localstripe.requests_log(path=REFUNDS, method="POST")
    assert [(e["status"], e["executed"], e["replayed"]) for e in log] == [(500, True, False), (200, False, True)]
    assert localstripe.executed(path=REFUNDS) == 1


def test_fault_after_on_every_try_leaves_one_refund_the_next_call_replays(localstripe):
    intent = _charged_intent(localstripe)
    localstripe.fault(path=REFUNDS, status=502, when="after", count=3)

    with pytest.raises(ProviderUnavailable):
        gateway.refund_create(payment_intent=intent["id"], amount=300, idempotency_key="k:r1")
    (refund,) = gateway.refund_list(payment_intent=intent["id"])

    assert gateway.refund_create(payment_intent=intent["id"], amount=300, idempotency_key="k:r1")["id"] == refund["id"]
    log = localstripe.requests_log(path=REFUNDS, method="POST")
    assert len(log) == 4 and {e["idempotency_key"] for e in log} == {"k:r1"}
    assert localstripe.executed(path=REFUNDS) == 1


def test_fault_reset_is_a_connection_error(localstripe):
    intent = _charged_intent(localstripe)
    localstripe.fault(path=REFUNDS, status="reset", when="after", count=3)

    with pytest.raises(ProviderUnavailable) as caught:
        gateway.refund_create(payment_intent=intent["id"], amount=300, idempotency_key="k:r1")

    assert isinstance(caught.value.__cause__, stripe.APIConnectionError)
    log = localstripe.requests_log(path=REFUNDS, method="POST")
    tries = [(e["status"], e["executed"], e["replayed"]) for e in log]
    assert tries == [(None, True, False), (None, False, True), (None, False, True)]
    assert len(gateway.refund_list(payment_intent=intent["id"])) == 1


def test_fault_timeout_after_the_client_gives_up_the_retry_replays(localstripe, settings):
    settings.STRIPE_TIMEOUT = 1
    gateway.reset_client()
    intent = _charged_intent(localstripe)
    localstripe.fault(path=REFUNDS, status="timeout", when="after", latency=2.5)

    started = time.monotonic()
    refund = gateway.refund_create(payment_intent=intent["id"], amount=300, idempotency_key="k:r1")

    assert time.monotonic() - started >= 1
    assert [r["id"] for r in gateway.refund_list(payment_intent=intent["id"])] == [refund["id"]]
    log = localstripe.requests_log(path=REFUNDS, method="POST")
    assert [(e["executed"], e["replayed"]) for e in log] == [(True, False), (False, True)]


def test_fault_timeout_before_keeps_the_key_in_use_and_clearing_drops_it(localstripe, settings):
    settings.STRIPE_TIMEOUT = 1
    _no_retries(settings)
    intent = _charged_intent(localstripe)
    localstripe.fault(path=REFUNDS, status="timeout", when="before", latency=2.5)

    with pytest.raises(ProviderUnavailable) as caught:
        gateway.refund_create(payment_intent=intent["id"], amount=300, idempotency_key="k:r1")
    assert isinstance(caught.value.__cause__, stripe.APIConnectionError)
    busy = _send(localstripe, "POST", "/v1/refunds", {"payment_intent": intent["id"], "amount": 300}, key="k:r1")
    assert (busy.status, busy.json()["error"].get("code")) == (409, "idempotency_key_in_use")

    localstripe.faults_clear()  # the held request is dropped, never executed
    time.sleep(0.1)

    assert localstripe.executed(path=REFUNDS) == 0
    assert gateway.refund_list(payment_intent=intent["id"]) == []


def test_fault_429_and_latency(localstripe, settings):
    _no_retries(settings)
    localstripe.fault(path=INTENTS, status=429, latency=0.3)

    started = time.monotonic()
    answer = _send(localstripe, "POST", "/v1/payment_intents", {"amount": 1000, "currency": "usd"}, key="k:1")

    assert time.monotonic() - started >= 0.3
    assert answer.status == 429
    assert answer.headers["Idempotency-Key"] == "k:1"
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "rate_limit")
    localstripe.fault(path=INTENTS, status=429)
    with pytest.raises(ProviderUnavailable) as caught:
        _create_intent(1000, key="k:2")
    assert isinstance(caught.value.__cause__, stripe.RateLimitError)
    assert localstripe.executed(path=INTENTS) == 0


def test_fault_402_is_a_card_decline(localstripe):
    intent = gateway.payment_intent_create(
        amount=1000,
        currency="usd",
        metadata={},
        capture_method="manual",
        payment_method=localstripe.card_payment_method(VISA),
        automatic_payment_methods=False,
        idempotency_key="k:pi",
    )
    confirm = f"^/v1/payment_intents/{intent['id']}/confirm$"
    localstripe.fault(path=confirm, status=402)

    with pytest.raises(PaymentError) as caught:
        gateway.payment_intent_confirm(id=intent["id"], idempotency_key="k:confirm")

    assert caught.value.code == "card_declined"
    error = caught.value.__cause__.error
    assert (error.type, error.code, error.decline_code) == ("card_error", "card_declined", "generic_decline")
    assert error.message == "Your card was declined."
    assert localstripe.executed(path=confirm) == 0
    assert gateway.payment_intent_retrieve(id=intent["id"])["status"] == "requires_confirmation"


def test_fault_409_is_retried_by_stripe_python_then_raised(localstripe):
    localstripe.fault(path=INTENTS, status=409, count=3)

    with pytest.raises(ApplicationError):
        _create_intent(1000, key="k:create")

    log = localstripe.requests_log(path=INTENTS)
    assert [e["status"] for e in log] == [409, 409, 409]
    assert _intent_ids(localstripe) == []


def test_fault_matches_param_idempotency_key_and_method(localstripe, settings):
    _no_retries(settings)
    intent = _charged_intent(localstripe)
    by_param = localstripe.fault(path=REFUNDS, param={"amount": 700, "metadata": {"ledger": "r2"}})
    by_key = localstripe.fault(path=REFUNDS, idempotency_key="^k:r3$")
    on_get = localstripe.fault(method="GET", path=REFUNDS, status=503)

    gateway.refund_create(payment_intent=intent["id"], amount=300, metadata={"ledger": "r2"}, idempotency_key="k:r1")
    with pytest.raises(ProviderUnavailable):
        gateway.refund_create(
            payment_intent=intent["id"], amount=700, metadata={"ledger": "r2"}, idempotency_key="k:r2"
        )
    with pytest.raises(ProviderUnavailable):
        gateway.refund_create(payment_intent=intent["id"], amount=100, idempotency_key="k:r3")
    with pytest.raises(ProviderUnavailable):
        gateway.refund_list(payment_intent=intent["id"])

    log = localstripe.requests_log(path=REFUNDS)
    fired = [(e["method"], e["fault"]) for e in log]
    assert fired == [("POST", None), ("POST", by_param), ("POST", by_key), ("GET", on_get)]
    assert [f["count"] for f in localstripe.faults()] == [0, 0, 0]
    assert len(gateway.refund_list(payment_intent=intent["id"])) == 1


def test_fault_custom_body_and_invalid_rules(localstripe):
    localstripe.fault(path=INTENTS, status=500, body={"error": {"type": "api_error", "message": "custom"}})
    answer = _send(localstripe, "POST", "/v1/payment_intents", {"amount": 1000, "currency": "usd"})
    assert (answer.status, answer.json()) == (500, {"error": {"type": "api_error", "message": "custom"}})

    invalid = [{"path": "^/v1/", "status": 418}, {"path": "("}, {"status": 500}, {"path": "x", "when": "later"}]
    for bad in invalid:
        with pytest.raises(LocalStripeError) as caught:
            localstripe.request("POST", "/_control/faults", bad)
        assert caught.value.status == 400


# --- Request log and control API -----------------------------------------------------


def test_request_log_filters_and_clears(localstripe):
    intent = _create_intent(1000, key="k:create")
    gateway.payment_intent_retrieve(id=intent["id"])

    assert [e["method"] for e in localstripe.requests_log()] == ["POST", "GET"]
    (post,) = localstripe.requests_log(path=INTENTS, method="POST")
    assert post["params"]["amount"] == "1000" and post["idempotency_key"] == "k:create"
    (get,) = localstripe.requests_log(method="GET")
    assert (get["path"], get["idempotency_key"], get["status"]) == (f"/v1/payment_intents/{intent['id']}", None, 200)

    localstripe.requests_clear()
    assert localstripe.requests_log() == []


def test_control_routes_need_no_api_key(localstripe):
    answer = _send(localstripe, "GET", "/_control/faults", api_key=None)
    assert (answer.status, answer.json()) == (200, {"data": []})
    reset = _send(localstripe, "POST", "/_control/reset-http", {}, api_key=None)
    assert reset.status == 200
