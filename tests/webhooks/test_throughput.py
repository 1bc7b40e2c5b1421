"""The fast acknowledgement (issue 13): one statement per ack, group commit, hand-off off the request.

Real PostgreSQL, real threads, a real Celery worker and a real process killed between the
commit and the hand-off. Throughput itself is measured by devtools/bench_webhooks.py (numbers
in docs/checkout-stripe-runbook.md), never asserted here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from tests.plugins.celery_worker import _database_url
from tests.webhooks.conftest import WEBHOOK_SECRET, build_event, deliver, encode, sign
from webhooks import handoff, services
from webhooks.models import WebhookEvent, WebhookEventStatus

ROOT = Path(__file__).resolve().parents[2]
Status = WebhookEventStatus


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _event(n: int | str) -> dict[str, Any]:
    return build_event("customer.created", {"id": f"cus_tp_{n}", "object": "customer"})


# --- Statements per ack -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_throughput_ack_is_one_insert_in_autocommit(
    raw_client, webhook_secret, celery_unconsumed_queue, django_assert_num_queries
):
    """The deployed path (autocommit, the lean middleware, a broker): one INSERT ... RETURNING, no
    BEGIN/SELECT/COMMIT; the task is sent by the hand-off thread, not in the request."""
    event = _event("one")
    with django_assert_num_queries(1) as captured:
        response = deliver(raw_client, event)
    assert response.status_code == 200
    assert response.json() == {"received": True, "id": event["id"], "duplicate": False}
    (sql,) = [q["sql"] for q in captured.captured_queries]
    assert sql.startswith('INSERT INTO "webhooks_webhookevent"')
    assert sql.endswith('ON CONFLICT ("stripe_event_id") DO NOTHING RETURNING "stripe_event_id"')

    with django_assert_num_queries(1):  # a redelivery: the same statement, nothing inserted, nothing read
        duplicate = deliver(raw_client, event)
    assert duplicate.json() == {"received": True, "id": event["id"], "duplicate": True}
    assert WebhookEvent.objects.filter(stripe_event_id=event["id"]).count() == 1


@pytest.mark.django_db
def test_throughput_ack_skips_the_store_middleware(raw_client, webhook_secret):
    """POST is answered by WebhookAckMiddleware: no session or CSRF cookie work, but the request id is echoed."""
    response = deliver(raw_client, _event("lean"), headers={"X-Request-ID": "req_lean_path_test"})
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req_lean_path_test"
    assert "X-Frame-Options" not in response  # XFrameOptionsMiddleware (and everything after the lane) did not run
    assert raw_client.get("/webhooks/stripe").status_code == 405  # other methods: the full stack, error shape


@pytest.mark.django_db
def test_throughput_ack_body_too_large_is_413(raw_client, webhook_secret, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = deliver(raw_client, _event("big"))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert WebhookEvent.objects.count() == 0


# --- Group commit: at most once, batched --------------------------------------------------------


class Gate:
    """Holds the first flush until ``expected`` more items are queued behind it."""

    def __init__(self, group: handoff.GroupCommit[Any, Any], expected: int) -> None:
        self.group, self.expected, self.first = group, expected, True

    def __call__(self, rows: list[WebhookEvent]) -> list[bool]:
        if self.first:
            self.first = False
            wait_for(lambda: len(self.group._pending) >= self.expected, "the followers to queue")
        return handoff._insert_rows(rows)


def _row(stripe_event_id: str) -> WebhookEvent:
    return WebhookEvent(
        stripe_event_id=stripe_event_id, type="customer.created", payload="{}", api_version="2026-05-27.dahlia"
    )


def _submit_all(group: handoff.GroupCommit[Any, Any], rows: list[WebhookEvent]) -> list[bool]:
    results: list[bool | None] = [None] * len(rows)
    errors: list[BaseException] = []

    def submit(i: int) -> None:
        try:
            results[i] = group.submit(rows[i])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    leader = threading.Thread(target=submit, args=(0,))
    leader.start()
    wait_for(lambda: group._busy, "the leader")
    followers = [threading.Thread(target=submit, args=(i,)) for i in range(1, len(rows))]
    for thread in followers:
        thread.start()
    for thread in [leader, *followers]:
        thread.join(timeout=60)
    assert not errors, errors
    return [bool(r) for r in results]


@pytest.mark.django_db(transaction=True)
def test_throughput_group_commit_batches_concurrent_acks_into_one_statement():
    """Eight deliveries at once: the first commits alone, the seven queued behind it share the next statement."""
    group: handoff.GroupCommit[WebhookEvent, bool] = handoff.GroupCommit(lambda rows: gate(rows))
    gate = Gate(group, expected=7)
    rows = [_row(f"evt_tp_batch_{i}") for i in range(8)]
    assert _submit_all(group, rows) == [True] * 8
    assert (group.batches, group.largest_batch) == (2, 7)
    assert WebhookEvent.objects.filter(stripe_event_id__startswith="evt_tp_batch_").count() == 8


@pytest.mark.django_db(transaction=True)
def test_throughput_duplicates_inserted_at_most_once_within_and_across_batches():
    """One event delivered six times at once (five of them in the same batch) plus an earlier stored copy."""
    WebhookEvent.objects.create(stripe_event_id="evt_tp_stored", type="customer.created", payload="{}")
    group: handoff.GroupCommit[WebhookEvent, bool] = handoff.GroupCommit(lambda rows: gate(rows))
    gate = Gate(group, expected=7)
    rows = [_row("evt_tp_dup") for _ in range(6)] + [_row("evt_tp_stored"), _row("evt_tp_other")]
    created = _submit_all(group, rows)
    assert created[:6].count(True) == 1  # exactly one of the six deliveries stored it
    assert created[6:] == [False, True]
    assert WebhookEvent.objects.filter(stripe_event_id="evt_tp_dup").count() == 1
    assert WebhookEvent.objects.filter(stripe_event_id="evt_tp_stored").count() == 1


@pytest.mark.django_db(transaction=True)
def test_throughput_concurrent_redeliveries_through_the_view_store_once(webhook_secret):
    """Twelve threads post four events three times each through the real middleware and service."""
    events = [_event(f"conc_{n}") for n in range(4)]
    barrier = threading.Barrier(12)
    answers: list[tuple[str, bool]] = []

    def post(event: dict[str, Any]) -> None:
        try:
            barrier.wait(timeout=30)
            body = deliver(Client(), event).json()
            answers.append((body["id"], body["duplicate"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(e,)) for e in events for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 12
    for event in events:
        assert sorted(dup for eid, dup in answers if eid == event["id"]) == [False, True, True]
        assert WebhookEvent.objects.filter(stripe_event_id=event["id"]).count() == 1


@pytest.mark.django_db(transaction=True)
def test_throughput_batch_error_reaches_every_caller_as_503(raw_client, webhook_secret):
    """A failed statement fails every ack of its batch: 503 + Retry-After (Stripe retries), nothing stored."""
    with connection.cursor() as cursor:  # the inbox table briefly unwritable: a real database error
        cursor.execute("ALTER TABLE webhooks_webhookevent ADD CONSTRAINT tp_reject CHECK (stripe_event_id = '')")
    try:
        from django.db import DatabaseError

        group: handoff.GroupCommit[WebhookEvent, bool] = handoff.GroupCommit(handoff._insert_rows)
        with pytest.raises(DatabaseError):
            group.submit(_row("evt_tp_rejected"))
        assert group._busy is False  # the next caller leads again
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE webhooks_webhookevent DROP CONSTRAINT tp_reject")
    assert WebhookEvent.objects.count() == 0


# --- Hand-off to a real worker ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_throughput_handoff_a_real_worker_processes_the_event(raw_client, webhook_secret, celery_broker):
    event = _event("worker")
    assert deliver(raw_client, event).status_code == 200
    wait_for(
        lambda: WebhookEvent.objects.get(stripe_event_id=event["id"]).status == Status.PROCESSED,
        f"the worker; log tail:\n{celery_broker.output()[-2000:]}",
    )
    row = WebhookEvent.objects.get(stripe_event_id=event["id"])
    assert (row.attempts, row.last_error) == (1, "ignored: no handler for customer.created")


@pytest.fixture
def blackhole_broker() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: a send to it hangs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"


CRASHING_RECEIVER = """
import os, signal, sys
import django
django.setup()
from django.test import Client
body = sys.stdin.buffer.read()
response = Client().generic(
    "POST", "/webhooks/stripe", body, content_type="application/json",
    HTTP_STRIPE_SIGNATURE=os.environ["TEST_SIGNATURE"], HTTP_HOST="127.0.0.1",
)
print(response.status_code, response.content.decode(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # dies with the hand-off still in flight
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_throughput_crash_between_commit_and_handoff_recovered_by_the_sweep(
    webhook_secret, celery_broker, blackhole_broker
):
    """A web process acks (committed) and is killed before its sender reached the broker: the sweep queues it."""
    event = _event("crash")
    payload = encode(event)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=_database_url(),
        CELERY_BROKER_URL=blackhole_broker,
        CELERY_TASK_ALWAYS_EAGER="false",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        TEST_SIGNATURE=sign(payload),
    )
    child = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", CRASHING_RECEIVER],
        input=payload,
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    assert child.stdout.decode().startswith("200 "), child.stdout.decode() + child.stderr.decode()[-2000:]
    row = WebhookEvent.objects.get(stripe_event_id=event["id"])  # the 200 meant committed
    assert (row.status, row.attempts) == (Status.RECEIVED, 0)  # and nothing was ever queued

    time.sleep(1)
    assert WebhookEvent.objects.get(pk=row.pk).status == Status.RECEIVED  # the worker has nothing to run
    later = timezone.now() + settings.WEBHOOK_SWEEP_AFTER + timedelta(seconds=1)
    assert services.webhook_events_sweep(now=later) == 1
    wait_for(
        lambda: WebhookEvent.objects.get(pk=row.pk).status == Status.PROCESSED,
        f"the swept event; worker log tail:\n{celery_broker.output()[-2000:]}",
    )
