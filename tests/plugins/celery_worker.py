"""pytest plugin: a real Celery worker process on a private Redis queue, against the test database.

Fixtures:

* ``celery_worker`` (session): starts ``celery -A config worker --pool=solo -Q <queue>``
  with ``DATABASE_URL`` pointing at pytest-django's *test* database (so it sees what
  ``transaction=True`` tests commit), the broker at ``TEST_REDIS_URL`` (default
  ``redis://127.0.0.1:6379/0``) and, when the test asks for it, the localstripe server.
  Yields a :class:`Worker`; stops the process by its pid at the end of the session.
* ``celery_broker`` (function): makes *this* process send tasks to that broker and queue
  (not eagerly) for the duration of one test; the queue is purged afterwards.

Every task a test sends goes to that test's private queue (``task_default_queue`` too, not
only the webhook queue), and each private queue is purged and its kombu binding keys deleted
when it is done: nothing is left in the Redis DB the suite was given (a demo worker on the
same DB would otherwise run the suite's leftover tasks).

Use with ``@pytest.mark.django_db(transaction=True)``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 30.0

# The worker's settings: fast retries so the dead-letter path runs in seconds.
WORKER_SETTINGS = {
    "WEBHOOK_MAX_RETRIES": "2",
    "WEBHOOK_RETRY_BACKOFF": "1",
    "WEBHOOK_RETRY_BACKOFF_MAX": "2",
    "STRIPE_MAX_NETWORK_RETRIES": "0",
    "STRIPE_AUTOMATIC_PAYMENT_METHODS": "false",
    "STRIPE_SEND_SETUP_FUTURE_USAGE": "false",
}


def broker_url() -> str:
    return os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    queue: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # warm shutdown: finishes the task at hand
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup: Any, django_db_blocker: Any, localstripe_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    import redis

    redis.Redis.from_url(broker_url(), socket_connect_timeout=3).ping()  # fail loudly without Redis
    from tests.plugins.localstripe import TEST_API_KEY

    queue = f"test-webhooks-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    with django_db_blocker.unblock():
        database_url = _database_url()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "CELERY_BROKER_URL", "STRIPE_API_BASE", "PROMETHEUS_MULTIPROC_DIR")
    }
    env.update(
        WORKER_SETTINGS,
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url(),
        CELERY_TASK_ALWAYS_EAGER="false",
        STRIPE_API_BASE=localstripe_server,
        STRIPE_API_KEY=TEST_API_KEY,
        WEBHOOK_TASK_QUEUE=queue,
        CELERY_TASK_DEFAULT_QUEUE=queue,  # what the worker enqueues itself (confirmations) stays private too
        DJANGO_CONN_MAX_AGE="0",
    )
    command = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", queue,
        "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info", "-n", f"{queue}@%h",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    worker = Worker(process=process, queue=queue, log=log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while " ready." not in worker.output():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Celery worker did not start:\n{worker.output()[-4000:]}")
            time.sleep(0.2)
        yield worker
    finally:
        _stop(process)
        _queue_forget(queue)


def _queue_forget(queue: str) -> None:
    """Delete a private queue's messages and kombu's binding keys for it."""
    import redis

    client = redis.Redis.from_url(broker_url(), socket_connect_timeout=3)
    client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    for key in ("_kombu.binding.celery", "_kombu.binding.celery.pidbox", "_kombu.binding.reply.celery.pidbox"):
        for member in client.smembers(key):
            if queue.encode() in member:
                client.srem(key, member)


def _forget_connections(app: Any) -> None:
    """Drop the cached connection/producer pools: the next send connects to the current broker_url."""
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


@contextmanager
def _sending_to_broker(queue: str) -> Iterator[None]:
    from config.celery import app

    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_url", "task_default_queue")}
    # every task of the test (confirmation emails too) goes to the test's queue, never to "celery"
    app.conf.update(task_always_eager=False, broker_url=broker_url(), task_default_queue=queue)
    _forget_connections(app)
    try:
        yield
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)
        app.conf.update(saved)
        _forget_connections(app)


@pytest.fixture
def celery_broker(celery_worker: Worker, settings: Any) -> Iterator[Worker]:
    """Send this test's tasks to the worker's queue through Redis instead of running them eagerly."""
    settings.WEBHOOK_TASK_QUEUE = celery_worker.queue
    with _sending_to_broker(celery_worker.queue):
        yield celery_worker


@pytest.fixture
def celery_unconsumed_queue(settings: Any) -> Iterator[str]:
    """Tasks go to Redis on a queue no worker reads (the test runs the processing itself); purged after."""
    import redis

    redis.Redis.from_url(broker_url(), socket_connect_timeout=3).ping()
    queue = f"test-unconsumed-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    settings.WEBHOOK_TASK_QUEUE = queue
    with _sending_to_broker(queue):
        yield queue
    _queue_forget(queue)
