"""``GET /metrics``: HTTP, database and cache metrics (django-prometheus) next to the business ones.

The first tests scrape this process (no ``PROMETHEUS_MULTIPROC_DIR``). The last runs the
deployment's shape: gunicorn (config/gunicorn.conf.py, two workers) and a Celery worker
sharing one multiprocess directory; a webhook is stored by gunicorn and processed by the
worker, and gunicorn's ``/metrics`` shows the worker's counter with its own HTTP and
database metrics.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.common.test_request_logging import start_worker, wait_for
from tests.plugins import celery_worker as plugin
from tests.plugins.localstripe import localstripe_server  # noqa: F401 - fixture
from tests.webhooks.conftest import WEBHOOK_SECRET, build_event, encode, sign

TOKEN = "metrics-test-token-7c1e"  # noqa: S105 - a test value


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample ``name{...}`` whose labels include ``labels``; None when absent."""
    for match in re.finditer(rf"^{re.escape(name)}(?:\{{(.*?)\}})? (\S+)$", text, re.M):
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group(2))
    return None


@pytest.mark.django_db
def test_metrics_has_http_database_and_cache_metrics_next_to_the_business_ones(api_client, settings):
    settings.METRICS_TOKEN = TOKEN
    from django.core.cache import cache

    cache.get("metrics-test-miss")
    assert api_client.get("/store/regions").status_code == 200

    assert api_client.get("/metrics").status_code == 401  # the token check is unchanged
    body = api_client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()

    assert sample(body, "django_http_requests_latency_seconds_by_view_method_count", view="regions", method="GET") >= 1
    assert sample(body, "django_http_responses_total_by_status_view_method_total", view="regions", status="200") >= 1
    assert sample(body, "django_db_execute_total", alias="default", vendor="postgresql") >= 1
    assert sample(body, "django_cache_get_total") >= 1
    assert sample(body, "checkout_webhook_inbox_backlog") == 0  # the business gauges are still there
    assert "# TYPE checkout_orders_created_total counter" in body


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str, **headers: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback only
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_gunicorn_metrics_sum_the_celery_workers_counters(
    django_db_blocker: Any,
    localstripe_server: str,
    tmp_path: Path,  # noqa: F811
) -> None:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    queue = f"test-metrics-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        database_url = plugin._database_url()
        worker = start_worker(
            tmp_path / "worker.log", queue, localstripe_server, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)
        )
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "STRIPE_API_BASE")}
    env.update(
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=plugin.broker_url(),
        CELERY_TASK_ALWAYS_EAGER="false",
        WEBHOOK_TASK_QUEUE=queue,
        CELERY_TASK_DEFAULT_QUEUE=queue,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        DJANGO_CONN_MAX_AGE="0",
    )
    web_log = tmp_path / "gunicorn.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "config/gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
    ]
    with open(web_log, "wb") as out:
        web = subprocess.Popen(command, cwd=plugin.ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    site = f"http://127.0.0.1:{port}"
    try:

        def live() -> bool:
            try:
                return _get(f"{site}/health/live")[0] == 200
            except OSError:
                return False

        wait_for(live, lambda: web_log.read_text(errors="replace"))
        event = build_event("customer.created", {"id": "cus_metrics", "object": "customer"})
        payload = encode(event)
        request = urllib.request.Request(
            f"{site}/webhooks/stripe",
            data=payload,
            method="POST",
            headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload)},
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback only
            assert response.status == 200

        def scrape() -> str:
            status, body = _get(f"{site}/metrics", Authorization=f"Bearer {TOKEN}")
            assert status == 200, body
            return body

        # processed (and counted) in the Celery worker process only
        wait_for(
            lambda: (sample(scrape(), "checkout_webhook_events_processed_total", type="customer.created") or 0) >= 1,
            lambda: (tmp_path / "worker.log").read_text(errors="replace") + web_log.read_text(errors="replace"),
        )
        body = scrape()
        assert sample(body, "checkout_webhook_events_received_total", type="customer.created") == 1  # gunicorn's
        latency = sample(body, "django_http_requests_latency_seconds_by_view_method_count", view="webhooks-stripe")
        assert latency == 1
        assert sample(body, "django_db_execute_total", alias="default", vendor="postgresql") >= 1
        assert _get(f"{site}/metrics")[0] == 401
        assert len(list(metrics_dir.glob("*.db"))) >= 2  # files of more than one process
    finally:
        web.send_signal(signal.SIGTERM)
        try:
            web.wait(timeout=15)
        except subprocess.TimeoutExpired:
            web.kill()
            web.wait(timeout=5)
        plugin._stop(worker)
        plugin._queue_forget(queue)
