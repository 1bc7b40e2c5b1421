"""The Stripe gateway against a real localstripe server (no mocks of Stripe).

Cards: 4242424242424242 succeeds, 4000000000000341 declines at confirm,
4000002760003184 needs 3-D Secure, 4000000000000002 declines when attached.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from common.errors import ApplicationError, NotFound, PaymentError, ProviderUnavailable
from payments import gateway
from tests.helpers import DECLINED_AT_ATTACH, DECLINED_AT_CONFIRM, THREE_D_SECURE, VISA


def _create_intent(amount: int = 1000, *, key: str = "test:pi:v1", **overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "amount": amount,
        "currency": "usd",
        "metadata": {"cart_id": "cart_test"},
        "capture_method": "manual",
        "automatic_payment_methods": False,
        "idempotency_key": key,
    }
    params.update(overrides)
    return gateway.payment_intent_create(**params)


def _authorized_intent(localstripe, amount: int = 1000) -> dict[str, Any]:
    payment_method = localstripe.card_payment_method(VISA)
    intent = _create_intent(amount, payment_method=payment_method)
    return gateway.payment_intent_confirm(id=intent["id"], idempotency_key=f"test:{intent['id']}:confirm")


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- PaymentIntents -----------------------------------------------------------


def test_payment_intent_create_update_confirm_authorizes_visa(localstripe):
    intent = _create_intent(1000)
    assert intent["object"] == "payment_intent"
    assert intent["status"] == "requires_payment_method"
    assert intent["amount"] == 1000
    assert intent["capture_method"] == "manual"
    assert intent["metadata"] == {"cart_id": "cart_test"}
    assert intent["client_secret"].startswith(intent["id"] + "_secret_")

    payment_method = localstripe.card_payment_method(VISA)
    updated = gateway.payment_intent_update(
        id=intent["id"],
        amount=1500,
        payment_method=payment_method,
        metadata={"cart_version": "2"},
        idempotency_key="k:u",
    )
    assert updated["amount"] == 1500  # an int, although localstripe keeps the form value "1500"
    assert updated["status"] == "requires_confirmation"
    assert updated["metadata"] == {"cart_id": "cart_test", "cart_version": "2"}

    confirmed = gateway.payment_intent_confirm(id=intent["id"], idempotency_key="k:c")
    assert confirmed["status"] == "requires_capture"
    charge = gateway.charge_retrieve(id=gateway.latest_charge_id(confirmed))
    assert (charge["amount"], charge["captured"], charge["status"]) == (1500, False, "succeeded")
    assert gateway.payment_intent_retrieve(id=intent["id"])["status"] == "requires_capture"


def test_payment_intent_create_with_confirm_charges_in_one_call(localstripe):
    payment_method = localstripe.card_payment_method(VISA)
    intent = _create_intent(700, payment_method=payment_method, capture_method="automatic", confirm=True)
    assert intent["status"] == "succeeded"
    assert gateway.charge_retrieve(id=gateway.latest_charge_id(intent))["captured"] is True


def test_payment_intent_update_without_changes_returns_the_intent(localstripe):
    intent = _create_intent(1000)
    assert gateway.payment_intent_update(id=intent["id"], idempotency_key="k:noop")["id"] == intent["id"]


def test_payment_intent_confirm_declined_card_raises_card_declined(localstripe):
    intent = _create_intent(1000, payment_method=localstripe.card_payment_method(DECLINED_AT_CONFIRM))

    with pytest.raises(PaymentError) as caught:
        gateway.payment_intent_confirm(id=intent["id"], idempotency_key="k:c")

    assert (caught.value.http_status, caught.value.code) == (402, "card_declined")
    assert caught.value.message == "Your card was declined."
    after = gateway.payment_intent_retrieve(id=intent["id"])
    assert after["status"] == "requires_payment_method"
    assert after["last_payment_error"]["code"] == "card_declined"


def test_declined_intent_cannot_be_confirmed_again_on_localstripe(localstripe):
    intent = _create_intent(1000, payment_method=localstripe.card_payment_method(DECLINED_AT_CONFIRM))
    with pytest.raises(PaymentError):
        gateway.payment_intent_confirm(id=intent["id"], idempotency_key="k:c1")
    gateway.payment_intent_update(
        id=intent["id"], payment_method=localstripe.card_payment_method(VISA), idempotency_key="k:u"
    )

    # Stripe would confirm with the new card; localstripe keeps the intent in
    # requires_payment_method and answers 400 (docs/localstripe.md).
    with pytest.raises(ApplicationError) as caught:
        gateway.payment_intent_confirm(id=intent["id"], idempotency_key="k:c2")
    assert caught.value.code == "payment_provider_error"


def test_payment_intent_3d_secure_requires_action_then_authenticates(localstripe):
    intent = _create_intent(1000, payment_method=localstripe.card_payment_method(THREE_D_SECURE))

    confirmed = gateway.payment_intent_confirm(id=intent["id"], idempotency_key="k:c")
    assert confirmed["status"] == "requires_action"
    assert confirmed["next_action"]["type"] == "use_stripe_sdk"

    localstripe.authenticate(intent["id"], intent["client_secret"], success=True)
    assert gateway.payment_intent_retrieve(id=intent["id"])["status"] == "requires_capture"


def test_payment_intent_3d_secure_failure_needs_a_new_payment_method(localstripe):
    intent = _create_intent(1000, payment_method=localstripe.card_payment_method(THREE_D_SECURE))
    gateway.payment_intent_confirm(id=intent["id"], idempotency_key="k:c")

    localstripe.authenticate(intent["id"], intent["client_secret"], success=False)

    after = gateway.payment_intent_retrieve(id=intent["id"])
    assert after["status"] == "requires_payment_method"
    assert after["last_payment_error"]["code"] == "payment_intent_authentication_failure"


def test_payment_intent_capture_partial_amount(localstripe):
    intent = _authorized_intent(localstripe, 1000)

    captured = gateway.payment_intent_capture(id=intent["id"], amount_to_capture=600, idempotency_key="k:cap")

    assert captured["status"] == "succeeded"
    charge = gateway.charge_retrieve(id=gateway.latest_charge_id(captured))
    assert (charge["amount"], charge["captured"]) == (1000, True)
    # localstripe releases the uncaptured 400 as a refund (docs/localstripe.md).
    assert charge["amount_refunded"] == 400


def test_refund_create_partial_then_rest(localstripe):
    intent = _authorized_intent(localstripe, 1000)
    gateway.payment_intent_capture(id=intent["id"], idempotency_key="k:cap")

    refund = gateway.refund_create(
        payment_intent=intent["id"], amount=300, metadata={"ledger": "r1"}, idempotency_key="k:r1"
    )

    assert refund["object"] == "refund"
    assert (refund["amount"], refund["status"], refund["payment_intent"]) == (300, "succeeded", intent["id"])
    assert refund["metadata"] == {"ledger": "r1"}
    rest = gateway.refund_create(payment_intent=intent["id"], amount=700, idempotency_key="k:r2")
    assert rest["amount"] == 700
    charge = gateway.charge_retrieve(id=gateway.latest_charge_id(intent))
    assert (charge["amount_refunded"], charge["refunded"]) == (1000, True)


def test_payment_intent_cancel_authorized_intent(localstripe):
    intent = _authorized_intent(localstripe, 1000)

    canceled = gateway.payment_intent_cancel(id=intent["id"], idempotency_key="k:x")

    assert canceled["status"] == "canceled"
    with pytest.raises(ApplicationError) as caught:  # Stripe refuses to cancel twice (400)
        gateway.payment_intent_cancel(id=intent["id"], idempotency_key="k:x2")
    assert (caught.value.http_status, caught.value.code) == (502, "payment_provider_error")


# --- Customers and saved cards -----------------------------------------------


def test_customer_payment_method_attach_list_detach(localstripe):
    customer = gateway.customer_create(email="ada@example.com", metadata={"user": "7"}, idempotency_key="k:cu")
    assert customer["object"] == "customer"
    assert (customer["email"], customer["metadata"]) == ("ada@example.com", {"user": "7"})
    payment_method = localstripe.card_payment_method(VISA, exp_month=4, exp_year=2031)

    attached = gateway.payment_method_attach(id=payment_method, customer=customer["id"], idempotency_key="k:a")

    assert attached["customer"] == customer["id"]
    cards = gateway.payment_method_list(customer=customer["id"])
    assert [(c["id"], c["card"]["last4"], c["card"]["exp_month"], c["card"]["exp_year"]) for c in cards] == [
        (payment_method, "4242", 4, 2031)
    ]
    assert gateway.payment_method_retrieve(id=payment_method)["card"]["brand"] == "visa"

    detached = gateway.payment_method_detach(id=payment_method, idempotency_key="k:d")
    assert detached["customer"] is None
    assert gateway.payment_method_list(customer=customer["id"]) == []


def test_payment_method_attach_declined_card_raises_card_declined(localstripe):
    customer = gateway.customer_create(email="ada@example.com", metadata={}, idempotency_key="k:cu")

    with pytest.raises(PaymentError) as caught:
        gateway.payment_method_attach(
            id=localstripe.card_payment_method(DECLINED_AT_ATTACH), customer=customer["id"], idempotency_key="k:a"
        )

    assert (caught.value.http_status, caught.value.code) == (402, "card_declined")


def test_saved_card_pays_for_customer_intent(localstripe):
    customer = gateway.customer_create(email="ada@example.com", metadata={}, idempotency_key="k:cu")
    payment_method = localstripe.card_payment_method(VISA)
    gateway.payment_method_attach(id=payment_method, customer=customer["id"], idempotency_key="k:a")

    intent = _create_intent(2500, customer=customer["id"], payment_method=payment_method, confirm=True)

    assert intent["status"] == "requires_capture"
    assert (intent["customer"], intent["payment_method"]) == (customer["id"], payment_method)


# --- Error mapping -------------------------------------------------------------


def test_retrieve_missing_object_raises_not_found(localstripe):
    with pytest.raises(NotFound):
        gateway.payment_intent_retrieve(id="pi_doesnotexist")
    with pytest.raises(NotFound):
        gateway.charge_retrieve(id="ch_doesnotexist")


def test_closed_port_raises_provider_unavailable(localstripe, settings):
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{_closed_port()}"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    gateway.reset_client()

    with pytest.raises(ProviderUnavailable) as caught:
        _create_intent(1000)
    assert (caught.value.http_status, caught.value.code) == (503, "payment_provider_unavailable")
    with pytest.raises(ProviderUnavailable):
        gateway.payment_intent_retrieve(id="pi_any")


def test_rejected_request_raises_payment_provider_error(localstripe):
    # localstripe answers 400 to automatic_payment_methods (docs/localstripe.md).
    with pytest.raises(ApplicationError) as caught:
        _create_intent(1000, automatic_payment_methods=True)

    assert type(caught.value) is ApplicationError
    assert (caught.value.http_status, caught.value.code) == (502, "payment_provider_error")


def test_provider_5xx_raises_provider_unavailable_502_after_retrying_with_the_same_key(
    localstripe, settings, sent_requests
):
    settings.STRIPE_MAX_NETWORK_RETRIES = 1
    gateway.reset_client()
    intent = _authorized_intent(localstripe)
    # Stripe answers 500 to both attempts (the stand-in answers a capture without a charge with
    # Stripe's 400, so the 5xx is injected).
    localstripe.fault(path=f"/v1/payment_intents/{intent['id']}/capture", status=500, count=2)

    with pytest.raises(ProviderUnavailable) as caught:
        gateway.payment_intent_capture(id=intent["id"], idempotency_key="k:cap:1")

    assert caught.value.http_status == 502
    captures = [r for r in sent_requests if r["url"].endswith(f"/v1/payment_intents/{intent['id']}/capture")]
    assert [r["headers"].get("Idempotency-Key") for r in captures] == ["k:cap:1", "k:cap:1"]


# --- Idempotency keys ----------------------------------------------------------


def test_every_write_sends_the_callers_idempotency_key(localstripe, sent_requests):
    customer = gateway.customer_create(email="ada@example.com", metadata={}, idempotency_key="key-customer")
    payment_method = localstripe.card_payment_method(VISA)
    gateway.payment_method_attach(id=payment_method, customer=customer["id"], idempotency_key="key-attach")
    intent = _create_intent(1000, key="key-create", customer=customer["id"])
    pi = intent["id"]
    gateway.payment_intent_update(id=pi, payment_method=payment_method, idempotency_key="key-update")
    gateway.payment_intent_confirm(id=pi, idempotency_key="key-confirm")
    gateway.payment_intent_capture(id=pi, amount_to_capture=800, idempotency_key="key-capture")
    gateway.refund_create(payment_intent=pi, amount=100, idempotency_key="key-refund")
    gateway.payment_method_detach(id=payment_method, idempotency_key="key-detach")
    other = _create_intent(1000, key="key-create-2")
    gateway.payment_intent_cancel(id=other["id"], idempotency_key="key-cancel")

    posts = [r for r in sent_requests if r["method"] == "POST"]
    writes = [(r["url"].split("/v1/")[1], r["headers"].get("Idempotency-Key")) for r in posts]
    assert writes == [
        ("customers", "key-customer"),
        (f"payment_methods/{payment_method}/attach", "key-attach"),
        ("payment_intents", "key-create"),
        (f"payment_intents/{pi}", "key-update"),
        (f"payment_intents/{pi}/confirm", "key-confirm"),
        (f"payment_intents/{pi}/capture", "key-capture"),
        ("refunds", "key-refund"),
        (f"payment_methods/{payment_method}/detach", "key-detach"),
        ("payment_intents", "key-create-2"),
        (f"payment_intents/{other['id']}/cancel", "key-cancel"),
    ]
    assert all(r["headers"].get("Idempotency-Key") is None for r in sent_requests if r["method"] == "GET")


def test_repeated_write_sends_the_same_key(localstripe, sent_requests):
    first = _create_intent(1000, key="cart:cart_1:pi:v1")
    second = _create_intent(1000, key="cart:cart_1:pi:v1")

    keys = [r["headers"].get("Idempotency-Key") for r in sent_requests]
    assert keys == ["cart:cart_1:pi:v1", "cart:cart_1:pi:v1"]
    # The stand-in replays the first response, as Stripe does (devtools/standin/http.py).
    assert first["id"] == second["id"]


def test_write_without_idempotency_key_is_refused(localstripe, sent_requests):
    with pytest.raises(ValueError):
        gateway.payment_intent_cancel(id="pi_any", idempotency_key="")
    assert sent_requests == []


# --- Webhooks ------------------------------------------------------------------


def _signed(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


EVENT = json.dumps({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded", "data": {}}).encode()


def test_webhook_event_construct_accepts_any_configured_secret():
    event = gateway.webhook_event_construct(
        payload=EVENT, sig_header=_signed(EVENT, "whsec_new"), secrets=["whsec_old", "whsec_new"], tolerance=300
    )
    assert (event["id"], event["type"]) == ("evt_1", "payment_intent.succeeded")


@pytest.mark.parametrize(
    ("payload", "sig_header", "secrets"),
    [
        pytest.param(EVENT, _signed(EVENT, "whsec_other"), ["whsec_a"], id="wrong-secret"),
        pytest.param(EVENT + b" ", _signed(EVENT, "whsec_a"), ["whsec_a"], id="tampered"),
        pytest.param(EVENT, _signed(EVENT, "whsec_a", int(time.time()) - 301), ["whsec_a"], id="stale"),
        pytest.param(EVENT, "", ["whsec_a"], id="missing-header"),
        pytest.param(EVENT, "garbage", ["whsec_a"], id="malformed-header"),
        pytest.param(EVENT, _signed(EVENT, ""), ["", ""], id="no-secret-configured"),
        pytest.param(b"\xff\xfe", _signed(b"\xff\xfe", "whsec_a"), ["whsec_a"], id="not-utf8"),
        pytest.param(b"[1]", _signed(b"[1]", "whsec_a"), ["whsec_a"], id="not-an-event"),
    ],
)
def test_webhook_event_construct_rejects(payload, sig_header, secrets):
    with pytest.raises(gateway.WebhookSignatureError) as caught:
        gateway.webhook_event_construct(payload=payload, sig_header=sig_header, secrets=secrets, tolerance=300)
    assert (caught.value.http_status, caught.value.code) == (400, "invalid_signature")


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, queue.Queue]]:
    received: queue.Queue = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.put((body, self.headers.get("Stripe-Signature")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/webhooks/stripe", received
    finally:
        server.shutdown()
        server.server_close()


def test_localstripe_webhook_delivery_verifies(localstripe, webhook_receiver):
    url, received = webhook_receiver
    localstripe.register_webhook("test", url=url, secret="whsec_test", events=["payment_intent.succeeded"])
    payment_method = localstripe.card_payment_method(VISA)
    intent = _create_intent(1000, payment_method=payment_method, capture_method="automatic", confirm=True)

    # The stand-in POSTs every event as it happens, to the webhooks registered by then;
    # filter by object id all the same.
    deadline = time.monotonic() + 10
    while True:
        payload, sig_header = received.get(timeout=max(deadline - time.monotonic(), 0.1))
        event = gateway.webhook_event_construct(
            payload=payload, sig_header=sig_header, secrets=["whsec_test"], tolerance=300
        )
        if event["data"]["object"]["id"] == intent["id"]:
            break
    assert event["type"] == "payment_intent.succeeded"
    assert event["data"]["object"]["status"] == "succeeded"


# --- dj-stripe mirror ------------------------------------------------------------


@pytest.mark.django_db
def test_mirror_syncs_payment_objects_into_djstripe(localstripe):
    from djstripe import models as djstripe_models

    customer = gateway.customer_create(email="ada@example.com", metadata={}, idempotency_key="k:cu")
    payment_method = localstripe.card_payment_method(VISA)
    gateway.payment_method_attach(id=payment_method, customer=customer["id"], idempotency_key="k:a")
    intent = _create_intent(1000, customer=customer["id"], payment_method=payment_method, confirm=True)
    intent = gateway.payment_intent_capture(id=intent["id"], idempotency_key="k:cap")
    refund = gateway.refund_create(payment_intent=intent["id"], amount=250, idempotency_key="k:r")
    charge = gateway.charge_retrieve(id=gateway.latest_charge_id(intent))

    for obj in (customer, gateway.payment_method_retrieve(id=payment_method), intent, charge, refund):
        assert gateway.mirror(obj) is True

    assert djstripe_models.Customer.objects.get(id=customer["id"]).email == "ada@example.com"
    assert djstripe_models.PaymentMethod.objects.get(id=payment_method).customer_id == customer["id"]
    mirrored_intent = djstripe_models.PaymentIntent.objects.get(id=intent["id"])
    assert mirrored_intent.customer_id == customer["id"]
    assert mirrored_intent.djstripe_owner_account_id == gateway.LOCAL_ACCOUNT_ID
    assert djstripe_models.Charge.objects.get(id=charge["id"]).payment_intent_id == intent["id"]
    assert djstripe_models.Refund.objects.get(id=refund["id"]).amount == 250


@pytest.mark.django_db
def test_mirror_syncs_a_dispute(localstripe):
    from djstripe import models as djstripe_models

    payment_method = localstripe.card_payment_method(VISA)
    intent = _create_intent(1000, payment_method=payment_method, capture_method="automatic", confirm=True)
    charge = gateway.charge_retrieve(id=gateway.latest_charge_id(intent))
    assert gateway.mirror(charge) is True
    # localstripe has no disputes: this is the shape Stripe sends in charge.dispute.created.
    dispute = {
        "id": "dp_test",
        "object": "dispute",
        "amount": 1000,
        "currency": "usd",
        "charge": charge["id"],
        "payment_intent": intent["id"],
        "balance_transactions": [],
        "created": int(time.time()),
        "livemode": False,
        "metadata": {},
        "reason": "fraudulent",
        "status": "needs_response",
    }

    assert gateway.mirror(dispute) is True

    assert djstripe_models.Dispute.objects.get(id="dp_test").charge_id == charge["id"]


@pytest.mark.django_db
def test_mirror_failure_is_logged_and_leaves_the_transaction_usable(localstripe, caplog):
    from djstripe import models as djstripe_models

    customer = gateway.customer_create(email="ada@example.com", metadata={}, idempotency_key="k:cu")
    assert gateway.mirror(customer) is True

    # PostgreSQL refuses NUL in jsonb: the UPDATE fails inside the test's transaction.
    assert gateway.mirror({**customer, "metadata": {"note": "a\u0000b"}}) is False
    assert gateway.mirror({"object": "charge", "id": "ch_broken"}) is False
    assert gateway.mirror({"object": "invoice", "id": "in_1"}) is False

    assert f"stripe_mirror_failed object=customer id={customer['id']}" in caplog.text
    assert "stripe_mirror_failed object=charge id=ch_broken" in caplog.text
    assert djstripe_models.Customer.objects.get(id=customer["id"]).metadata == {}  # the transaction still works


@pytest.mark.django_db
def test_djstripe_bootstrap_is_idempotent(localstripe, settings):
    from djstripe import models as djstripe_models

    gateway.djstripe_bootstrap()
    gateway.djstripe_bootstrap()

    key = djstripe_models.APIKey.objects.get(secret=settings.STRIPE_API_KEY)
    assert key.djstripe_owner_account_id == gateway.LOCAL_ACCOUNT_ID
    assert djstripe_models.Account.objects.filter(id=gateway.LOCAL_ACCOUNT_ID).count() == 1
