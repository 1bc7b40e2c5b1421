"""Idempotency-Key for every POST under /store (API.md; common/idempotency.py)."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from carts.models import Cart
from common.models import IdempotencyRecord, IdempotencyStatus
from common.tasks import purge_idempotency_keys
from tests.common import urls_idempotency
from tests.factories import RegionFactory, UserFactory
from tests.factories.common import IdempotencyRecordFactory
from tests.helpers import token_for

TEST_URLS = "tests.common.urls_idempotency"


def post(client: APIClient, path: str, body: str, *, key: str | None = None, token: str | None = None):
    headers = {}
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.post(path, data=body, content_type="application/json", **headers)


def fingerprint(body: str) -> str:
    """The JSON body in canonical form (sorted keys, no white space), hashed."""
    canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def customer_token() -> str:
    return token_for(UserFactory())


def cart_body(region_id: str, email: str = "a@example.com") -> str:
    return f'{{"region_id": "{region_id}", "email": "{email}"}}'


# --- replay, reuse -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_idempotency_replay_returns_same_cart_without_running_view(api_client, region_usd):
    body = cart_body(region_usd.id)
    first = post(api_client, "/store/carts", body, key="order-attempt-1")
    second = post(api_client, "/store/carts", body, key="order-attempt-1")

    assert first.status_code == 201, first.content
    assert "Idempotent-Replayed" not in first
    assert second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second["Content-Type"] == "application/json"
    assert second.content == first.content
    assert second.json()["cart"]["id"] == first.json()["cart"]["id"]
    assert Cart.objects.count() == 1
    record = IdempotencyRecord.objects.get()
    assert (record.scope, record.status, record.response_status) == ("guest", IdempotencyStatus.COMPLETED, 201)
    assert record.expires_at - record.created_at >= timedelta(hours=24)


@pytest.mark.django_db
def test_idempotency_key_reused_with_different_body_is_422(api_client, region_usd):
    post(api_client, "/store/carts", cart_body(region_usd.id, "a@example.com"), key="k1")
    response = post(api_client, "/store/carts", cart_body(region_usd.id, "b@example.com"), key="k1")

    assert response.status_code == 422
    assert response.json() == {
        "error": {
            "type": "invalid_request_error",
            "code": "idempotency_key_reused",
            "message": "This Idempotency-Key was already used with a different request.",
            "param": None,
        }
    }
    assert Cart.objects.count() == 1


@pytest.mark.django_db
def test_idempotency_same_json_serialised_differently_is_replayed(api_client, region_usd):
    first = post(
        api_client, "/store/carts", f'{{"region_id": "{region_usd.id}", "email": "a@example.com"}}', key="k-json"
    )
    second = post(
        api_client, "/store/carts", f'{{\n  "email":"a@example.com",\n  "region_id":"{region_usd.id}"\n}}', key="k-json"
    )

    assert first.status_code == 201, first.content
    assert second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.content == first.content
    assert Cart.objects.count() == 1


@pytest.mark.django_db
def test_idempotency_key_reused_on_different_path_is_422(api_client, region_usd):
    cart_id = post(api_client, "/store/carts", cart_body(region_usd.id)).json()["cart"]["id"]
    body = '{"email": "c@example.com"}'
    assert post(api_client, f"/store/carts/{cart_id}", body, key="k2").status_code == 200

    response = post(api_client, "/store/carts", body, key="k2")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"


@pytest.mark.django_db
def test_idempotency_4xx_is_stored_and_replayed(api_client):
    body = '{"email": "a@example.com"}'  # region_id missing
    first = post(api_client, "/store/carts", body, key="k-400")
    second = post(api_client, "/store/carts", body, key="k-400")

    assert first.status_code == second.status_code == 400
    assert first.json()["error"]["param"] == "region_id"
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"


# --- in flight -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_idempotency_retry_while_in_flight_is_409_then_replays():
    """Thread A's view blocks on the cart row lock another connection holds; B retries meanwhile."""
    region = RegionFactory()
    client = APIClient()
    cart_id = post(client, "/store/carts", cart_body(region.id)).json()["cart"]["id"]
    body = '{"email": "new@example.com"}'
    locked, release = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def hold_cart_lock() -> None:
        try:
            with transaction.atomic():
                Cart.objects.select_for_update().get(pk=cart_id)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    def first_request() -> None:
        try:
            results["a"] = post(APIClient(), f"/store/carts/{cart_id}", body, key="slow-key")
        finally:
            connection.close()

    holder = threading.Thread(target=hold_cart_lock)
    holder.start()
    assert locked.wait(10)
    thread_a = threading.Thread(target=first_request)
    thread_a.start()
    try:
        deadline = time.monotonic() + 10
        while not IdempotencyRecord.objects.filter(key="slow-key", status=IdempotencyStatus.IN_FLIGHT).exists():
            assert time.monotonic() < deadline, "the in-flight record was never committed"
            time.sleep(0.01)

        in_flight = post(client, f"/store/carts/{cart_id}", body, key="slow-key")
        assert thread_a.is_alive(), "A must still be inside the view"
    finally:
        release.set()
        holder.join(10)
        thread_a.join(10)

    assert in_flight.status_code == 409
    assert in_flight["Retry-After"] == "1"
    assert in_flight.json()["error"] == {
        "type": "conflict_error",
        "code": "idempotency_key_in_use",
        "message": "A request with this Idempotency-Key is still being processed. Retry later.",
        "param": None,
    }
    first = results["a"]
    assert first.status_code == 200, first.content
    assert first.json()["cart"]["email"] == "new@example.com"
    replay = post(client, f"/store/carts/{cart_id}", body, key="slow-key")
    assert replay.status_code == 200
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.content == first.content
    assert Cart.objects.get(pk=cart_id).version == 2  # created at 1, the view ran once


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_idempotency_simultaneous_first_requests_run_the_view_once():
    """Eight threads send the same key and body at once: one cart; the others get 409 or the replay."""
    region = RegionFactory()
    body = cart_body(region.id)
    barrier = threading.Barrier(8)
    responses = []

    def send() -> None:
        try:
            barrier.wait(10)
            responses.append(post(APIClient(), "/store/carts", body, key="race-key"))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(responses) == 8
    assert Cart.objects.count() == 1
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}
    originals = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r]
    assert len(originals) == 1
    assert all(r.content == originals[0].content for r in responses if r.status_code == 201)
    assert all(r.json()["error"]["code"] == "idempotency_key_in_use" for r in responses if r.status_code == 409)


@pytest.mark.django_db
def test_idempotency_fresh_in_flight_record_is_409(api_client, region_usd):
    body = cart_body(region_usd.id)
    IdempotencyRecordFactory(
        key="k-busy", status=IdempotencyStatus.IN_FLIGHT, request_fingerprint=fingerprint(body), response_status=None
    )

    response = post(api_client, "/store/carts", body, key="k-busy")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_in_use"
    assert Cart.objects.count() == 0


@pytest.mark.django_db
def test_idempotency_crashed_in_flight_record_is_taken_over_after_lock_timeout(api_client, region_usd, settings):
    body = cart_body(region_usd.id)
    long_ago = timezone.now() - settings.IDEMPOTENCY_LOCK_TIMEOUT - timedelta(seconds=1)
    stale = IdempotencyRecordFactory(
        key="k-crashed",
        status=IdempotencyStatus.IN_FLIGHT,
        request_fingerprint=fingerprint(body),
        created_at=long_ago,
        response_status=None,
        response_body=None,
    )

    response = post(api_client, "/store/carts", body, key="k-crashed")

    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    record = IdempotencyRecord.objects.get()
    assert record.pk == stale.pk
    assert record.lock_token != stale.lock_token
    assert (record.status, record.response_status) == (IdempotencyStatus.COMPLETED, 201)


@pytest.mark.django_db
def test_idempotency_expired_record_is_not_replayed(api_client, region_usd):
    IdempotencyRecordFactory(key="k-old", created_at=timezone.now() - timedelta(hours=49))

    response = post(api_client, "/store/carts", cart_body(region_usd.id), key="k-old")

    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    record = IdempotencyRecord.objects.get()
    assert record.response_body == response.content.decode()
    assert record.expires_at > timezone.now() + timedelta(hours=24)


# --- scope -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_idempotency_scope_is_per_customer(api_client, region_usd):
    body = cart_body(region_usd.id)
    alice, bob = customer_token(), customer_token()

    first = post(api_client, "/store/carts", body, key="shared", token=alice)
    other = post(api_client, "/store/carts", body, key="shared", token=bob)
    guest = post(api_client, "/store/carts", body, key="shared")
    again = post(api_client, "/store/carts", body, key="shared", token=alice)

    assert [r.status_code for r in (first, other, guest, again)] == [201, 201, 201, 201]
    assert "Idempotent-Replayed" not in other and "Idempotent-Replayed" not in guest
    ids = {r.json()["cart"]["id"] for r in (first, other, guest)}
    assert len(ids) == 3
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["cart"]["id"] == first.json()["cart"]["id"]
    assert first.json()["cart"]["customer_id"] != other.json()["cart"]["customer_id"]
    assert sorted(IdempotencyRecord.objects.values_list("scope", flat=True))[-1] == "guest"
    assert Cart.objects.count() == 3


@pytest.mark.django_db
def test_idempotency_invalid_token_is_not_stored(api_client, region_usd):
    response = post(api_client, "/store/carts", cart_body(region_usd.id), key="k-401", token="forged")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"
    assert not IdempotencyRecord.objects.exists()


# --- key validation, methods, paths ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", " ", " lead", "trail ", "a" * 256, "cl\u00e9", "a\x07b", "a\tb"])
def test_idempotency_invalid_key_is_400(api_client, region_usd, key):
    response = post(api_client, "/store/carts", cart_body(region_usd.id), key=key)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "validation_error",
        "Idempotency-Key",
    )
    assert Cart.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["a" * 255, "x", "0b9c3f4e-1d2a-4c1b-9a9e-2f5d6c7b8a90", "with inner space"])
def test_idempotency_valid_keys_accepted(api_client, region_usd, key):
    assert post(api_client, "/store/carts", cart_body(region_usd.id), key=key).status_code == 201
    assert IdempotencyRecord.objects.get().key == key


@pytest.mark.django_db
def test_idempotency_get_ignores_header(api_client, region_usd):
    cart_id = post(api_client, "/store/carts", cart_body(region_usd.id)).json()["cart"]["id"]

    first = api_client.get(f"/store/carts/{cart_id}", HTTP_IDEMPOTENCY_KEY="k-get")
    invalid = api_client.get(f"/store/carts/{cart_id}", HTTP_IDEMPOTENCY_KEY="")

    assert first.status_code == invalid.status_code == 200
    assert "Idempotent-Replayed" not in first
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
def test_idempotency_post_without_key_is_untouched(api_client, region_usd):
    post(api_client, "/store/carts", cart_body(region_usd.id))
    post(api_client, "/store/carts", cart_body(region_usd.id))

    assert Cart.objects.count() == 2
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
def test_idempotency_auth_token_response_is_never_stored(api_client):
    user = UserFactory()
    body = f'{{"email": "{user.email}", "password": "correct-horse-battery"}}'

    first = post(api_client, "/store/auth/token", body, key="k-token")
    second = post(api_client, "/store/auth/token", body, key="k-token")

    assert first.status_code == second.status_code == 200
    assert first.json()["token"] != second.json()["token"]
    assert not IdempotencyRecord.objects.exists()


# --- 5xx, DRF body ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.urls(TEST_URLS)
def test_idempotency_provider_unavailable_503_is_not_stored(api_client):
    before = urls_idempotency.CALLS["provider_down"]

    first = post(api_client, "/store/test/provider-down", "{}", key="k-503")
    second = post(api_client, "/store/test/provider-down", "{}", key="k-503")

    assert first.status_code == second.status_code == 503
    assert second.json()["error"]["code"] == "payment_provider_unavailable"
    assert "Idempotent-Replayed" not in second
    assert urls_idempotency.CALLS["provider_down"] == before + 2  # the retry ran the view again
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
@pytest.mark.urls(TEST_URLS)
def test_idempotency_unhandled_500_is_not_stored():
    client = APIClient(raise_request_exception=False)

    response = post(client, "/store/test/crash", "{}", key="k-500")

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
@pytest.mark.urls(TEST_URLS)
def test_idempotency_view_still_parses_body_read_by_middleware(api_client):
    body = '{"nested": {"amount": 1050}, "list": [1, 2]}'

    first = post(api_client, "/store/test/echo", body, key="k-echo")
    second = post(api_client, "/store/test/echo", body, key="k-echo")

    assert first.status_code == 200
    assert first.json()["data"] == {"nested": {"amount": 1050}, "list": [1, 2]}
    assert second.content == first.content  # "calls" unchanged: the view did not run again
    assert IdempotencyRecord.objects.get().request_fingerprint == fingerprint(body)


# --- cleanup --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_purge_idempotency_keys_command_deletes_only_expired():
    now = timezone.now()
    IdempotencyRecordFactory(key="old-1", created_at=now - timedelta(hours=49))
    IdempotencyRecordFactory(key="old-2", created_at=now - timedelta(days=30), status=IdempotencyStatus.IN_FLIGHT)
    IdempotencyRecordFactory(key="recent", created_at=now - timedelta(hours=25))
    out = io.StringIO()

    call_command("purge_idempotency_keys", "--batch-size=1", stdout=out)

    assert out.getvalue().strip() == "Deleted 2 expired idempotency key(s)."
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["recent"]


@pytest.mark.django_db
def test_purge_idempotency_keys_task_deletes_expired(settings):
    IdempotencyRecordFactory(key="old", created_at=timezone.now() - timedelta(hours=49))
    IdempotencyRecordFactory(key="fresh")

    assert purge_idempotency_keys() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]
    assert settings.CELERY_BEAT_SCHEDULE["purge-idempotency-keys"]["task"] == "common.tasks.purge_idempotency_keys"


# --- query overhead -------------------------------------------------------------------------------


def _query_count(fn) -> int:
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return len(ctx.captured_queries)


@pytest.mark.django_db
def test_idempotency_query_overhead(api_client, region_usd, django_assert_num_queries):
    body = cart_body(region_usd.id)
    token = customer_token()
    guest_baseline = _query_count(lambda: post(api_client, "/store/carts", body))
    customer_baseline = _query_count(lambda: post(api_client, "/store/carts", body, token=token))

    # Guest: one INSERT ... ON CONFLICT before the view, one UPDATE after it.
    with django_assert_num_queries(guest_baseline + 2):
        post(api_client, "/store/carts", body, key="q-guest")
    # Customer: the same, plus resolving the Bearer token to a scope.
    with django_assert_num_queries(customer_baseline + 3):
        post(api_client, "/store/carts", body, key="q-customer", token=token)
    # Replay: the INSERT that finds the record, then the SELECT that reads it; the view does not run.
    with django_assert_num_queries(2):
        post(api_client, "/store/carts", body, key="q-guest")
    with django_assert_num_queries(3):
        post(api_client, "/store/carts", body, key="q-customer", token=token)


# --- the in-flight window follows the request timeout (issue 12) -------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("age_beyond_timeout", "expected"),
    [(timedelta(seconds=1), 201), (timedelta(seconds=-5), 409)],
    ids=["stale-lock-taken-over", "live-lock-still-409"],
)
def test_idempotency_in_flight_lock_blocks_a_retry_only_within_the_request_timeout(
    api_client, region_usd, settings, age_beyond_timeout, expected
):
    body = cart_body(region_usd.id)
    locked_at = timezone.now() - settings.IDEMPOTENCY_LOCK_TIMEOUT - age_beyond_timeout
    assert timezone.now() - locked_at < timedelta(seconds=120)  # blocked for the old 120 s window either way
    stale = IdempotencyRecordFactory(
        key="k-killed",
        status=IdempotencyStatus.IN_FLIGHT,
        request_fingerprint=fingerprint(body),
        created_at=locked_at,
        response_status=None,
        response_body=None,
        completed_at=None,
    )

    response = post(api_client, "/store/carts", body, key="k-killed")

    assert response.status_code == expected
    record = IdempotencyRecord.objects.get()
    if expected == 201:
        assert (record.pk, record.status, record.response_status) == (stale.pk, IdempotencyStatus.COMPLETED, 201)
        assert Cart.objects.count() == 1
    else:
        assert response.json()["error"]["code"] == "idempotency_key_in_use"
        assert response["Retry-After"] == "1"
        assert (record.status, record.lock_token) == (IdempotencyStatus.IN_FLIGHT, stale.lock_token)
        assert Cart.objects.count() == 0
