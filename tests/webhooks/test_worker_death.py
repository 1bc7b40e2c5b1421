"""Issue 12: a worker killed mid-event. Real Celery workers (prefork, the pool production runs) on a
private Redis queue, SIGKILLed while the stand-in Stripe holds their PaymentIntent retrieve; the event
is then processed by another worker (or another child) within the configured bound, exactly once.

Nothing of ours is mocked: the hang is the stand-in answering late (a ``timeout`` fault on the
retrieve), the redelivery is Redis's (kombu's unacked restore) or the pool's (``reject_on_worker_lost``),
the takeover is the inbox's lease. The workers run with the production sizing (``STRIPE_TIMEOUT=10``,
two network retries: lease 43 s, visibility 45 s, restore scan every 5 s); no beat runs, so the inbox
sweep never helps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from orders.models import Order
from payments.models import LedgerEntry
from tests.plugins.celery_worker import _database_url, _queue_forget, _sending_to_broker, broker_url
from tests.plugins.localstripe import TEST_API_KEY
from tests.webhooks.conftest import build_event, deliver, make_cart, pay_cart, shop_for
from webhooks.models import WebhookEvent, WebhookEventStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
Status = WebhookEventStatus


class Worker:
    """``celery worker --pool=prefork -c 1`` in its own process group (so SIGKILL takes the whole worker)."""

    def __init__(self, *, queue: str, log: Path, localstripe_server: str) -> None:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("CELERY_", "WEBHOOK_", "STRIPE_"))
            and key not in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")
        }
        env.update(
            DATABASE_URL=_database_url(),
            CELERY_BROKER_URL=broker_url(),
            CELERY_TASK_ALWAYS_EAGER="false",
            STRIPE_API_BASE=localstripe_server,
            STRIPE_API_KEY=TEST_API_KEY,
            STRIPE_AUTOMATIC_PAYMENT_METHODS="false",
            STRIPE_SEND_SETUP_FUTURE_USAGE="false",
            WEBHOOK_TASK_QUEUE=queue,
            CELERY_TASK_DEFAULT_QUEUE=queue,
            DJANGO_CONN_MAX_AGE="0",
        )
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork", "--concurrency=1",
            "-Q", queue, "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info",
            "-n", f"{queue}-{uuid.uuid4().hex[:6]}@%h",
        ]  # fmt: skip
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and code
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, *, since: int = 0) -> None:
        wait_for(lambda: " ready." in self.output()[since:], self, timeout=60)

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def kill(self) -> None:
        """SIGKILL the main process and its pool children at once: nothing gets to ack or requeue."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()


def wait_for(predicate: Callable[[], bool], worker: Worker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s; worker log tail:\n{worker.output()[-4000:]}")
        time.sleep(0.2)


@pytest.fixture
def workers(localstripe_server: str, tmp_path: Path, settings: Any) -> Iterator[Callable[[], Worker]]:
    """Start workers on a private queue this test's tasks go to; every one is stopped at the end."""
    queue = f"test-death-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    settings.WEBHOOK_TASK_QUEUE = queue
    started: list[Worker] = []

    def start() -> Worker:
        worker = Worker(queue=queue, log=tmp_path / f"worker-{len(started)}.log", localstripe_server=localstripe_server)
        started.append(worker)
        worker.wait_ready()
        return worker

    with _sending_to_broker(queue):
        try:
            yield start
        finally:
            for worker in started:
                worker.stop()
    _queue_forget(queue)


def _hanging_event(localstripe: Any, raw_client: Any) -> tuple[dict[str, Any], str]:
    """A paid cart's amount_capturable_updated event, delivered while the stand-in holds every
    retrieve of its PaymentIntent (all three attempts of the gateway) for a minute."""
    shop = shop_for("usd")
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(stock=5), 2)]))
    intent = localstripe.request("GET", f"/v1/payment_intents/{paid.payment_intent_id}")
    path = f"^/v1/payment_intents/{paid.payment_intent_id}$"
    localstripe.fault(method="GET", path=path, status="timeout", latency=60, count=3)
    event = build_event("payment_intent.amount_capturable_updated", intent)
    assert deliver(raw_client, event).status_code == 200
    return event, paid.payment_intent_id


def _row(event_id: str) -> WebhookEvent:
    return WebhookEvent.objects.get(stripe_event_id=event_id)


def _wait_mid_processing(localstripe: Any, worker: Worker, event_id: str, payment_intent_id: str) -> None:
    """Until the worker has claimed the row and is waiting on the stand-in's (held) retrieve."""

    def held() -> bool:
        log = localstripe.requests_log(path=f"/v1/payment_intents/{payment_intent_id}", method="GET")
        return any(entry["status"] is None for entry in log) and _row(event_id).status == Status.PROCESSING

    wait_for(held, worker, timeout=30)


def _assert_processed_once(event_id: str, payment_intent_id: str) -> WebhookEvent:
    row = _row(event_id)
    assert row.status == Status.PROCESSED, row.last_error
    assert row.attempts == 2  # the dead attempt, then the takeover
    assert row.last_error.startswith("order_created")
    order = Order.objects.get(payment_intent_id=payment_intent_id)  # exactly one
    assert order.payment_status == "authorized"
    ledger = list(LedgerEntry.objects.filter(payment_intent_id=payment_intent_id).values_list("kind", "amount"))
    assert ledger == [("authorization", order.total)]  # one ledger effect
    return row


def test_whole_worker_killed_mid_event_is_redelivered_to_another_worker_within_a_minute(
    raw_client, webhook_secret, localstripe, workers
):
    first = workers()
    event, payment_intent_id = _hanging_event(localstripe, raw_client)
    _wait_mid_processing(localstripe, first, event["id"], payment_intent_id)
    claimed_at = _row(event["id"]).processing_started_at

    first.kill()
    killed_at = timezone.now()
    localstripe.faults_clear()  # Stripe answers again
    second = workers()  # started after the death: only the broker's redelivery can bring the message

    visibility = settings.CELERY_VISIBILITY_TIMEOUT
    restore_every = settings.CELERY_UNACKED_RESTORE_SECONDS
    wait_for(lambda: _row(event["id"]).status == Status.PROCESSED, second, timeout=visibility + restore_every + 15)

    row = _assert_processed_once(event["id"], payment_intent_id)
    assert row.processed_at is not None and claimed_at is not None
    # back after the visibility timeout (+ one restore scan), counted from the delivery: the claim
    # came a moment after it; a few seconds more for the takeover itself
    assert (row.processed_at - claimed_at).total_seconds() < visibility + restore_every + 5
    assert (row.processed_at - killed_at).total_seconds() < 60
    assert row.processing_started_at is not None  # the takeover's claim, once the lease had expired
    assert (row.processing_started_at - claimed_at).total_seconds() >= settings.WEBHOOK_PROCESSING_LEASE.total_seconds()
    assert "webhook.processed" in second.output()


def test_pool_child_killed_mid_event_is_requeued_and_taken_over_when_the_lease_expires(
    raw_client, webhook_secret, localstripe, workers
):
    """reject_on_worker_lost: the child's message is requeued at once; it finds the lease held and
    re-checks when it expires, then takes the row over (no sweep, no second worker)."""
    worker = workers()
    event, payment_intent_id = _hanging_event(localstripe, raw_client)
    _wait_mid_processing(localstripe, worker, event["id"], payment_intent_id)
    claimed_at = _row(event["id"]).processing_started_at
    (child,) = worker.children()

    os.kill(child, signal.SIGKILL)
    localstripe.faults_clear()

    lease = settings.WEBHOOK_PROCESSING_LEASE.total_seconds()
    wait_for(lambda: _row(event["id"]).status == Status.PROCESSED, worker, timeout=lease + 15)

    row = _assert_processed_once(event["id"], payment_intent_id)
    assert worker.process.poll() is None  # the worker itself lived on with a new child
    log = worker.output()
    assert "WorkerLostError" in log
    assert "recheck_in=" in log  # the requeued message found the lease held
    assert row.processed_at is not None and claimed_at is not None
    assert lease <= (row.processed_at - claimed_at).total_seconds() < lease + 5
