"""Request ids in the logs: one checkout followed from the web request into the Celery worker, a webhook by its event id.

The web process's lines are captured with the project's JSON formatter on the root logger;
the worker is a real ``celery worker`` process started with ``LOG_FORMAT=json`` (its own
private queue, like tests/plugins/celery_worker.py), whose output is parsed line by line.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from common.request_context import VALID_REQUEST_ID, request_id_from
from config.logging import build_logging, formatter
from orders.models import Order
from tests.orders.conftest import make_cart, pay_cart, shop_for
from tests.plugins import celery_worker as plugin
from tests.plugins.localstripe import localstripe, localstripe_server  # noqa: F401 - fixtures
from tests.webhooks.conftest import build_event, deliver, raw_client, webhook_secret  # noqa: F401 - fixtures
from webhooks.models import WebhookEvent, WebhookEventStatus

REQUEST_ID = "checkout-test.0123_ABC"


def start_worker(log: Path, queue: str, localstripe_url: str, **extra_env: str) -> subprocess.Popen[bytes]:
    """A real worker on ``queue`` against the test database (what the suite's plugin starts), plus ``extra_env``."""
    from tests.plugins.localstripe import TEST_API_KEY

    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "CELERY_BROKER_URL", "STRIPE_API_BASE", "PROMETHEUS_MULTIPROC_DIR")
    }
    env.update(
        plugin.WORKER_SETTINGS,
        DATABASE_URL=plugin._database_url(),
        CELERY_BROKER_URL=plugin.broker_url(),
        CELERY_TASK_ALWAYS_EAGER="false",
        STRIPE_API_BASE=localstripe_url,
        STRIPE_API_KEY=TEST_API_KEY,
        WEBHOOK_TASK_QUEUE=queue,
        CELERY_TASK_DEFAULT_QUEUE=queue,
        DJANGO_CONN_MAX_AGE="0",
        **extra_env,
    )
    command = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", queue,
        "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{queue}@%h",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=plugin.ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    deadline = time.monotonic() + plugin.READY_TIMEOUT
    while " ready." not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            plugin._stop(process)
            raise RuntimeError(f"Celery worker did not start:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.2)
    return process


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among ``text``'s lines (a worker also prints its banner and console emails)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


def wait_for(predicate: Callable[[], bool], describe: Callable[[], str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out:\n{describe()[-4000:]}")
        time.sleep(0.1)


@pytest.fixture
def json_worker(
    django_db_setup: Any,
    django_db_blocker: Any,
    localstripe_server: str,
    tmp_path: Path,
    settings: Any,  # noqa: F811
) -> Iterator[tuple[str, Path]]:
    """A JSON-logging worker on a private queue; this test's tasks are sent to it. Yields (queue, log file)."""
    queue = f"test-logs-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    with django_db_blocker.unblock():
        process = start_worker(log, queue, localstripe_server, LOG_FORMAT="json", LOG_LEVEL="INFO")
    settings.WEBHOOK_TASK_QUEUE = queue
    try:
        with plugin._sending_to_broker(queue):
            yield queue, log
    finally:
        plugin._stop(process)
        plugin._queue_forget(queue)


@pytest.fixture
def web_lines() -> Iterator[io.StringIO]:
    """This process's log lines, formatted by the project's JSON formatter, from the root logger."""
    spec = formatter("json")
    factory = spec.pop("()")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(factory(**spec))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_request_id_from_keeps_valid_ids_and_replaces_others():
    assert request_id_from("abc-DEF_1.2") == "abc-DEF_1.2"
    assert request_id_from("x" * 200) == "x" * 200
    for bad in ("", None, "x" * 201, "has space", "semi;colon", "é", "a\nb"):
        made = request_id_from(bad)
        assert made != bad and made.startswith("req_") and VALID_REQUEST_ID.match(made)


def test_build_logging_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        build_logging(fmt="xml", level="INFO")


@pytest.mark.django_db
def test_response_echoes_a_valid_request_id_and_replaces_an_invalid_one(api_client):
    given = api_client.get("/store/regions", HTTP_X_REQUEST_ID=REQUEST_ID)
    assert given["X-Request-ID"] == REQUEST_ID

    replaced = api_client.get("/store/regions", HTTP_X_REQUEST_ID="no spaces allowed")
    made = api_client.get("/store/regions")
    assert replaced["X-Request-ID"].startswith("req_") and made["X-Request-ID"].startswith("req_")
    assert replaced["X-Request-ID"] != made["X-Request-ID"]


@pytest.mark.django_db
def test_error_lines_of_a_request_carry_its_id_and_nothing_leaks_after(api_client, web_lines):
    response = api_client.get("/store/carts/cart_missing", HTTP_X_REQUEST_ID="r-404")
    assert response.status_code == 404
    logging.getLogger("tests").info("test.after_request")

    lines = json_lines(web_lines.getvalue())
    not_found = [line for line in lines if line["logger"] == "django.request"]
    assert not_found and all(line["request_id"] == "r-404" for line in not_found)
    assert not_found[0]["cart_id"] == "cart_missing"  # the URL's id
    after = next(line for line in lines if line["event"] == "test.after_request")
    assert "request_id" not in after and "cart_id" not in after


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_checkout_request_id_follows_into_the_worker(api_client, localstripe, json_worker, web_lines):  # noqa: F811
    queue, log = json_worker
    shop = shop_for("usd")
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(stock=5), 2)]))

    web_lines.seek(0)
    web_lines.truncate()  # only the request's lines from here
    response = api_client.post(
        f"/store/carts/{paid.cart_id}/complete",
        {"payment_intent_id": paid.payment_intent_id},
        format="json",
        HTTP_X_REQUEST_ID=REQUEST_ID,
    )
    assert response.status_code == 201, response.content
    assert response["X-Request-ID"] == REQUEST_ID
    order_id = response.json()["order"]["id"]

    web = json_lines(web_lines.getvalue())
    placed = [line for line in web if line["event"] == "order.placed"]
    assert len(placed) == 1
    assert placed[0]["request_id"] == REQUEST_ID and placed[0]["cart_id"] == paid.cart_id
    assert f"order_id={order_id}" in placed[0]["message"]
    assert {"timestamp", "level", "logger"} <= placed[0].keys()
    assert all(line.get("request_id") == REQUEST_ID for line in web)  # every line of the request

    def confirmation_lines() -> list[dict[str, Any]]:
        return [
            line
            for line in json_lines(log.read_text(errors="replace"))
            if line.get("task") == "orders.tasks.send_order_confirmation"
        ]

    wait_for(lambda: any("succeeded" in line["message"] for line in confirmation_lines()), log.read_text)
    worker = confirmation_lines()
    assert worker and all(line["request_id"] == REQUEST_ID for line in worker)
    assert all(line["order_id"] == order_id and line["cart_id"] == paid.cart_id for line in worker)
    assert {line["logger"] for line in worker} >= {"celery.app.trace"}  # Celery's own lines too
    assert Order.objects.get(pk=order_id).confirmation_sent_at is not None


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_webhook_processing_lines_carry_the_stripe_event_id(raw_client, webhook_secret, localstripe, json_worker):  # noqa: F811
    queue, log = json_worker
    shop = shop_for("usd")
    paid = pay_cart(localstripe, make_cart(shop, [(shop.variant(stock=5), 2)]))
    intent = localstripe.request("GET", f"/v1/payment_intents/{paid.payment_intent_id}")
    event = build_event("payment_intent.amount_capturable_updated", intent)

    response = deliver(raw_client, event, headers={"X-Request-ID": "stripe-delivery-1"})
    assert response.status_code == 200 and response["X-Request-ID"] == "stripe-delivery-1"

    def processed() -> bool:
        return WebhookEvent.objects.get(stripe_event_id=event["id"]).status == WebhookEventStatus.PROCESSED

    def task_lines() -> list[dict[str, Any]]:
        return [
            line for line in json_lines(log.read_text(errors="replace")) if line.get("task") == "webhooks.process_event"
        ]

    wait_for(lambda: processed() and any("succeeded" in line["message"] for line in task_lines()), log.read_text)
    lines = task_lines()
    ours = [line for line in lines if line["logger"].startswith(("webhooks", "orders", "payments"))]
    assert ours, lines  # the handler's own lines (order placed by the webhook, ...)
    succeeded = [line for line in lines if "succeeded" in line["message"]]
    for line in [*ours, *succeeded]:
        assert line["stripe_event_id"] == event["id"]
        assert line["payment_intent_id"] == paid.payment_intent_id
        assert line["request_id"] == "stripe-delivery-1"  # the delivery's request, carried in the task headers


@pytest.mark.parametrize(("level", "logged"), [("WARNING", False), ("INFO", True), ("DEBUG", True)])
def test_stripe_call_lines_follow_log_level_and_never_debug(level, logged, localstripe, capsys):  # noqa: F811
    """stripe-python logs one INFO line per API call: quiet at LOG_LEVEL=WARNING; its DEBUG lines
    (whole request and response bodies) stay off even at LOG_LEVEL=DEBUG."""
    from django.conf import settings

    from payments import gateway

    root = logging.getLogger()
    run_streams = [handler.stream for handler in root.handlers if type(handler) is logging.StreamHandler]
    logging.config.dictConfig(build_logging(fmt="json", level=level))
    try:
        gateway.customer_create(
            email="log-level@example.org", metadata={}, idempotency_key=f"test-log-level-{uuid.uuid4().hex}"
        )
    finally:
        logging.config.dictConfig(settings.LOGGING)
        # dictConfig built the console handler on sys.stderr, which is capsys's stream here and is
        # closed when this test ends: every later log line of the run would be a "--- Logging
        # error ---". Put back the stream the run's handler wrote to.
        for handler in root.handlers:
            if type(handler) is logging.StreamHandler and run_streams:
                handler.setStream(run_streams[0])
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    stripe_lines = [line for line in lines if line.get("logger") == "stripe"]
    assert bool(stripe_lines) is logged, lines
    assert all(line["level"] != "debug" for line in stripe_lines)
