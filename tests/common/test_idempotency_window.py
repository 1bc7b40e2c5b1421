"""The Idempotency-Key in-flight window follows the request timeout (issue 12).

``IDEMPOTENCY_LOCK_TIMEOUT`` defaults to the longest a request can run (``WEB_REQUEST_TIMEOUT``:
its Stripe calls with their retries; gunicorn's ``--timeout`` reads it) plus
``IDEMPOTENCY_LOCK_MARGIN``: a request older than that cannot still be running. The slow test proves the window
end to end: a real gunicorn (sync worker) serves a payment-session POST whose Stripe call hangs
on a socket that never answers; the worker is SIGKILLed mid-flight (no code runs to discard the
record), a retry with the same key is ``409 idempotency_key_in_use`` inside the window and runs
the view again once the window has passed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.utils import timezone

from common.models import IdempotencyRecord, IdempotencyStatus
from tests.orders.conftest import make_cart, shop_for
from tests.plugins import celery_worker as plugin
from tests.plugins.localstripe import TEST_API_KEY

ROOT = Path(__file__).resolve().parents[2]


def _settings_with(**env: str) -> dict[str, Any]:
    """The two values as a fresh settings import computes them from ``env``."""
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps([settings.WEB_REQUEST_TIMEOUT, settings.IDEMPOTENCY_LOCK_TIMEOUT.total_seconds()]))"
    )
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WEB_REQUEST_TIMEOUT", "IDEMPOTENCY_LOCK_TIMEOUT", "STRIPE_TIMEOUT")
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings.test", **env},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    web, lock = json.loads(out.strip().splitlines()[-1])
    return {"web": web, "lock": lock}


def test_lock_timeout_defaults_to_the_request_timeout_plus_the_margin(settings):
    assert settings.IDEMPOTENCY_LOCK_TIMEOUT == timedelta(
        seconds=settings.WEB_REQUEST_TIMEOUT + settings.IDEMPOTENCY_LOCK_MARGIN
    )
    assert settings.IDEMPOTENCY_LOCK_MARGIN == 5
    # two Stripe calls with their retries (10 s x 3 attempts each): the longest request
    assert _settings_with() == {"web": 60, "lock": 65}
    assert _settings_with(STRIPE_TIMEOUT="20") == {"web": 120, "lock": 125}
    assert _settings_with(WEB_REQUEST_TIMEOUT="12") == {"web": 12, "lock": 17}
    assert _settings_with(WEB_REQUEST_TIMEOUT="12", IDEMPOTENCY_LOCK_TIMEOUT="90") == {"web": 12, "lock": 90}


class BlackHole:
    """A TCP server that accepts and never answers while ``holding``; afterwards it closes every
    connection at once (Stripe unreachable: the gateway's error, fast)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.holding = True
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.holding:
                self.held.append(conn)
            else:
                conn.close()

    def release(self) -> None:
        self.holding = False
        for conn in self.held:
            conn.close()

    def close(self) -> None:
        self.release()
        self.sock.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _live(site: str) -> bool:
    try:
        return requests.get(f"{site}/health/live", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _wait_for(check: Any, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.1)


def _post_ignoring_errors(url: str, headers: dict[str, str]) -> None:
    try:
        requests.post(url, json={"provider_id": "stripe"}, headers=headers, timeout=60)
    except requests.RequestException:
        pass  # the worker is killed under it


def _wait_for_record(*, key: str) -> IdempotencyRecord:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        record = IdempotencyRecord.objects.filter(key=key).first()
        if record is not None:
            return record
        time.sleep(0.05)
    raise AssertionError(f"no idempotency record {key!r}")


def _worker_pid(log: Path) -> int | None:
    """The newest worker gunicorn booted (its own log line)."""
    pids = re.findall(r"Booting worker with pid: (\d+)", log.read_text(errors="replace"))
    return int(pids[-1]) if pids else None


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_request_killed_mid_flight_frees_its_key_after_the_window(tmp_path, django_db_blocker):
    web_timeout = 3
    window = timedelta(seconds=web_timeout + 5)  # the default: WEB_REQUEST_TIMEOUT + IDEMPOTENCY_LOCK_MARGIN
    shop = shop_for("usd")
    cart_id = make_cart(shop, [(shop.variant(), 1)])
    stripe = BlackHole()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CELERY_", "PYTEST", "IDEMPOTENCY_"))}
    env.update(
        DATABASE_URL=plugin._database_url(),
        DJANGO_SETTINGS_MODULE="config.settings.test",
        WEB_REQUEST_TIMEOUT=str(web_timeout),
        STRIPE_API_BASE=f"http://127.0.0.1:{stripe.port}",
        STRIPE_API_KEY=TEST_API_KEY,
        STRIPE_TEST_SECRET_KEY=TEST_API_KEY,
        STRIPE_TIMEOUT="60",  # the hang outlasts the request timeout: gunicorn's kill ends it
        STRIPE_MAX_NETWORK_RETRIES="0",
        CELERY_BROKER_URL="",
        CELERY_TASK_ALWAYS_EAGER="true",
        DJANGO_CONN_MAX_AGE="0",
    )
    log = tmp_path / "gunicorn.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "config/gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--worker-class",
        "sync",
        # The test kills the worker itself (SIGKILL: the OOM killer, a host loss); gunicorn's own
        # abort at --timeout raises SystemExit in the view, and the middleware discards the record
        # at once (no window needed), so it must not race the kill here.
        "--timeout",
        "60",
    ]
    site = f"http://127.0.0.1:{port}"
    url = f"{site}/store/carts/{cart_id}/payment-sessions"
    headers = {"Idempotency-Key": "killed-mid-flight"}
    with log.open("wb") as out:
        web = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        _wait_for(lambda: _live(site), log)

        first = threading.Thread(
            target=_post_ignoring_errors, args=(url, headers), daemon=True
        )  # hangs in the Stripe call
        first.start()
        with django_db_blocker.unblock():
            record = _wait_for_record(key="killed-mid-flight")
            assert record.status == IdempotencyStatus.IN_FLIGHT
            worker_pid = _worker_pid(log)
            os.kill(worker_pid, signal.SIGKILL)  # mid-flight: no Python code runs to discard the record
            first.join(timeout=30)
            _wait_for(lambda: _worker_pid(log) != worker_pid, log)  # gunicorn boots a new worker
            record.refresh_from_db()
        assert record.status == IdempotencyStatus.IN_FLIGHT  # nobody finished or discarded it

        assert timezone.now() < record.locked_at + window - timedelta(seconds=1), "too slow to check the window"
        inside = requests.post(url, json={"provider_id": "stripe"}, headers=headers, timeout=30)
        assert inside.status_code == 409, inside.text
        assert inside.json()["error"]["code"] == "idempotency_key_in_use"

        stripe.release()  # Stripe now refuses at once: the retry's view answers quickly
        time.sleep(max(0.0, (record.locked_at + window - timezone.now()).total_seconds()) + 0.5)
        after = requests.post(url, json={"provider_id": "stripe"}, headers=headers, timeout=30)
        # The view ran again (the key was taken over): the gateway's typed error, not 409.
        assert after.status_code == 503, after.text
        assert after.json()["error"]["code"] == "payment_provider_unavailable"
    finally:
        web.terminate()
        try:
            web.wait(timeout=15)
        except subprocess.TimeoutExpired:
            web.kill()
            web.wait(timeout=5)
        stripe.close()
