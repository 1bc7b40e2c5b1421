"""Degrade, don't fail (issue 12): a Redis or PostgreSQL outage is never a 500.

Both outages are real: the tests start their own ``redis-server`` and their own PostgreSQL
cluster on free ports, kill them by PID (``pg_ctl stop -m immediate`` for PostgreSQL: no
shutdown checkpoint, as a crash), and start them again. The shared servers are never touched.

* Redis: the test process's default cache points at the private redis-server; throttled
  requests pass before, during (the per-process fallback counts them and
  ``checkout_throttle_cache_errors_total`` grows) and after the outage, when Redis counts again.
* PostgreSQL: a ``runserver`` subprocess serves the project on the private cluster (schema copied
  from this session's test database with ``pg_dump``); while the cluster is down every store,
  webhook and readiness request answers 503 in the one error shape with ``Retry-After``, the
  admin (a signed-in staff session, the login form) answers the small HTML 503 page with
  ``Retry-After``, the storefront's shells (no model read) keep serving, and the same requests
  succeed once it is back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.test import RequestFactory
from prometheus_client import REGISTRY

from common import throttling
from common.errors import exception_handler
from common.middleware import DatabaseUnavailableMiddleware

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = "/usr/bin/redis-server"
PG_BIN = Path("/usr/local/bin")
WEBHOOK_SECRET = "whsec_outage_test_secret"
STAFF_EMAIL = "staff@example.com"
STAFF_PASSWORD = "correct-horse-battery"  # tests/factories UserFactory's password


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} not up after {timeout:.0f} s")


def cache_errors(scope: str) -> float:
    return REGISTRY.get_sample_value("checkout_throttle_cache_errors_total", {"scope": scope}) or 0.0


# --- Redis -------------------------------------------------------------------------------------


class RedisServer:
    """A private redis-server (no persistence) on ``port``, started and killed by PID."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        wait_until(client.ping, timeout=10, what="redis-server")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def keys(self, pattern: str) -> list[bytes]:
        return redis.Redis(host="127.0.0.1", port=self.port).keys(pattern)


@pytest.fixture
def redis_server(settings) -> Iterator[RedisServer]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip(f"{REDIS_SERVER} is not installed")
    server = RedisServer(free_port())
    server.start()
    settings.CACHES = {
        "default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": f"redis://127.0.0.1:{server.port}/0"}
    }
    throttling.local_fallback_clear()
    try:
        yield server
    finally:
        server.kill()
        throttling.local_fallback_clear()


@pytest.mark.slow
@pytest.mark.django_db
def test_redis_outage_throttled_requests_pass_and_throttling_resumes(api_client, region_usd, settings, redis_server):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "cart_create": "5/day"},
    }

    def create() -> int:
        return api_client.post("/store/carts", {"region_id": region_usd.id}, format="json").status_code

    def payment_session(cart_id: str) -> int:
        return api_client.post(
            f"/store/carts/{cart_id}/payment-sessions", {"provider_id": "stripe"}, format="json"
        ).status_code

    cart_id = api_client.post("/store/carts", {"region_id": region_usd.id}, format="json").json()["cart"]["id"]
    assert [create(), payment_session(cart_id)] == [201, 400]  # an empty cart: the view ran
    assert redis_server.keys("*throttle:cart_create:*")  # counted in Redis
    before = cache_errors("cart_create"), cache_errors("payment_session_cart")

    redis_server.kill()

    assert [create(), create(), payment_session(cart_id)] == [201, 201, 400]
    assert cache_errors("cart_create") - before[0] == 2
    assert cache_errors("payment_session_cart") - before[1] == 1

    redis_server.start()  # empty: Redis lost its counts, and counts again from zero
    errors_after_restart = cache_errors("cart_create")

    assert [create() for _ in range(6)] == [201] * 5 + [429]
    assert cache_errors("cart_create") == errors_after_restart
    assert redis_server.keys("*throttle:cart_create:*")


# --- PostgreSQL --------------------------------------------------------------------------------


def _as_postgres(command: list[str]) -> list[str]:
    """initdb refuses root: run the cluster's commands as the postgres user then."""
    if os.geteuid() != 0:
        return command
    return ["su", "postgres", "-c", " ".join(_quote(part) for part in command)]


def _quote(part: str) -> str:
    return "'" + part.replace("'", "'\\''") + "'"


@dataclass
class Cluster:
    data: Path
    port: int

    def ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]), check=True, capture_output=True
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.ctl("-o", options, "-l", str(self.data / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self.ctl("-m", mode, "-w", "stop")


@dataclass
class Server:
    base: str
    log: Path
    cluster: Cluster
    region_id: str

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base + path, timeout=30)

    def post(self, path: str, body: dict[str, Any], **headers: str) -> requests.Response:
        return requests.post(self.base + path, json=body, headers=headers, timeout=30)

    def admin_session(self) -> requests.Session:
        """A signed-in staff browser: the session row and the user are read on every admin page."""
        browser = requests.Session()
        browser.get(self.base + "/admin/login/", timeout=30)
        signed_in = self.admin_login(browser, STAFF_PASSWORD)
        assert signed_in.status_code == 302, signed_in.text[:300]
        return browser

    def admin_login(self, browser: requests.Session, password: str) -> requests.Response:
        return browser.post(
            self.base + "/admin/login/",
            data={
                "username": STAFF_EMAIL,
                "password": password,
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
                "next": "/admin/",
            },
            allow_redirects=False,
            timeout=30,
        )

    def webhook(self, event: dict[str, Any]) -> requests.Response:
        payload = json.dumps(event).encode()
        ts = int(time.time())
        signature = hmac.new(WEBHOOK_SECRET.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
        return requests.post(
            self.base + "/webhooks/stripe",
            data=payload,
            headers={"Content-Type": "application/json", "Stripe-Signature": f"t={ts},v1={signature}"},
            timeout=30,
        )


@pytest.fixture
def pg_server(db) -> Iterator[Server]:
    """One test uses it: function scope, so ``db`` has pointed the connection at the test database."""
    from django.db import connection

    for tool in ("initdb", "pg_ctl"):
        if not (PG_BIN / tool).exists():
            pytest.skip(f"{PG_BIN / tool} is not installed")
    if os.geteuid() == 0 and shutil.which("su") is None:
        pytest.skip("running as root without su: initdb cannot run")
    source = dict(connection.settings_dict)
    assert source["NAME"].startswith("test_"), source["NAME"]

    tmp = Path(tempfile.mkdtemp(prefix="outage-pg-"))
    data = tmp / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
        shutil.chown(data, "postgres")
    cluster = Cluster(data=data, port=free_port())
    server_process: subprocess.Popen[bytes] | None = None
    started = False
    try:
        subprocess.run(
            _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
            check=True,
            capture_output=True,
        )
        cluster.start()
        started = True
        # The schema (and django_migrations) of this session's test database: no 45 s migrate.
        target = ["-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres"]
        subprocess.run(["createdb", *target, "checkout"], check=True, capture_output=True)
        dump = subprocess.run(
            [
                "pg_dump",
                "--no-owner",
                "--no-acl",
                "-h",
                source["HOST"] or "127.0.0.1",
                "-p",
                str(source["PORT"] or 5432),
                "-U",
                source["USER"] or "postgres",
                source["NAME"],
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "PGPASSWORD": source.get("PASSWORD") or ""},
        ).stdout
        subprocess.run(
            ["psql", "-q", "-v", "ON_ERROR_STOP=1", *target, "checkout"], input=dump, check=True, capture_output=True
        )

        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CELERY_", "PYTEST", "DJANGO_CONN"))}
        env.update(
            DATABASE_URL=f"postgres://postgres@127.0.0.1:{cluster.port}/checkout",
            DJANGO_DEBUG="true",
            DJANGO_CONN_MAX_AGE="60",  # a persistent connection that the crash breaks
            CELERY_BROKER_URL="",
            CELERY_TASK_ALWAYS_EAGER="true",
            STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            PYTHONUNBUFFERED="1",
        )
        made = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "shell",
                "-c",
                "from tests.factories import RegionFactory, UserFactory; "
                f"UserFactory(email={STAFF_EMAIL!r}, is_staff=True, is_superuser=True); "
                "print(RegionFactory(name='Outage land').id)",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        region_id = made.stdout.strip().splitlines()[-1]

        port = free_port()
        log = tmp / "runserver.log"
        with log.open("wb") as out:
            server_process = subprocess.Popen(
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Server(base=f"http://127.0.0.1:{port}", log=log, cluster=cluster, region_id=region_id)
        wait_until(lambda: server.get("/health/live").status_code == 200, timeout=60, what="runserver")
        yield server
    finally:
        if server_process is not None:
            server_process.terminate()
            try:
                server_process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server_process.kill()
                server_process.wait(timeout=5)
        if started:
            try:
                cluster.stop("immediate")
            except subprocess.CalledProcessError:
                pass  # already stopped
        shutil.rmtree(tmp, ignore_errors=True)


def assert_html_service_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text[:300]
    assert response.headers["Content-Type"].startswith("text/html")
    assert 1 <= int(response.headers["Retry-After"]) <= 30
    assert "<h1>Temporarily unavailable</h1>" in response.text
    assert "Traceback" not in response.text and "OperationalError" not in response.text


def assert_service_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    assert 1 <= int(response.headers["Retry-After"]) <= 30
    assert response.json() == {
        "error": {
            "type": "api_error",
            "code": "service_unavailable",
            "message": "The service is temporarily unavailable. Please retry.",
            "param": None,
        }
    }


def event(kind: str = "payment_intent.created") -> dict[str, Any]:
    return {
        "id": f"evt_outage_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "type": kind,
        "created": int(time.time()),
        "api_version": "2024-06-20",
        "livemode": False,
        "data": {"object": {"id": f"pi_outage_{uuid.uuid4().hex[:12]}", "object": "payment_intent"}},
    }


@pytest.mark.slow
def test_database_outage_answers_503_with_retry_after_and_recovers(pg_server):
    cart = {"region_id": pg_server.region_id}
    assert pg_server.get("/store/regions").status_code == 200  # the persistent connection is open
    assert pg_server.post("/store/carts", cart).status_code == 201
    assert pg_server.get("/health/ready").status_code == 200
    staff = pg_server.admin_session()
    assert staff.get(pg_server.base + "/admin/", timeout=30).status_code == 200
    anonymous = requests.Session()
    anonymous.get(pg_server.base + "/admin/login/", timeout=30)  # the CSRF cookie

    pg_server.cluster.stop("immediate")
    try:
        # The first request breaks on the open connection, the next ones on connect (refused).
        for _ in range(2):
            assert_service_unavailable(pg_server.get("/store/regions"))
        assert_service_unavailable(pg_server.post("/store/carts", cart))
        # With Idempotency-Key the middleware cannot write its record: 503 before the view runs.
        assert_service_unavailable(pg_server.post("/store/carts", cart, **{"Idempotency-Key": "outage-retry-1"}))
        # Stripe retries a webhook delivery that got a 5xx: nothing is lost.
        assert_service_unavailable(pg_server.webhook(event()))
        ready = pg_server.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "not_ready"
        assert ready.json()["error"]["checks"]["database"] == "unavailable"
        # The admin and HTML pages answer a small HTML page, not the API's JSON nor a 500.
        assert_html_service_unavailable(staff.get(pg_server.base + "/admin/", timeout=30))
        assert_html_service_unavailable(staff.get(pg_server.base + "/admin/orders/order/", timeout=30))
        assert_html_service_unavailable(pg_server.admin_login(anonymous, STAFF_PASSWORD))
        # The storefront's pages are shells that read no model: they keep serving (the API they
        # call answers the JSON 503 above).
        assert pg_server.get("/").status_code == 200
    finally:
        pg_server.cluster.start()

    assert pg_server.get("/store/regions").status_code == 200
    assert pg_server.post("/store/carts", cart).status_code == 201
    retried = pg_server.post("/store/carts", cart, **{"Idempotency-Key": "outage-retry-1"})
    assert retried.status_code == 201  # no record was left behind: the retry runs, no 409
    assert pg_server.webhook(event()).status_code == 200
    assert pg_server.get("/health/ready").status_code == 200
    assert staff.get(pg_server.base + "/admin/", timeout=30).status_code == 200
    log = pg_server.log.read_text()
    assert "database.unavailable" in log
    assert '" 500 ' not in log and "Internal Server Error" not in log


# --- the two places that map a database error (no server needed) -----------------------------

SERVICE_UNAVAILABLE = {
    "error": {
        "type": "api_error",
        "code": "service_unavailable",
        "message": "The service is temporarily unavailable. Please retry.",
        "param": None,
    }
}


@pytest.mark.parametrize("error", [OperationalError("connection refused"), InterfaceError("connection already closed")])
def test_drf_handler_maps_database_errors_to_503_with_retry_after(error):
    response = exception_handler(error, {"request": RequestFactory().get("/store/regions")})

    assert response is not None
    assert (response.status_code, response.data) == (503, SERVICE_UNAVAILABLE)
    assert response["Retry-After"] == "5"


def test_drf_handler_still_leaves_real_bugs_to_the_500_handler():
    assert exception_handler(RuntimeError("boom"), {"request": None}) is None


@pytest.mark.parametrize("path", ["/store/regions", "/webhooks/stripe", "/health/ready"])
def test_middleware_maps_database_errors_of_non_drf_views_to_503(path):
    middleware = DatabaseUnavailableMiddleware(lambda request: HttpResponse())

    response = middleware.process_exception(
        RequestFactory().post(path), OperationalError("server closed the connection")
    )

    assert response is not None
    assert (response.status_code, json.loads(response.content)) == (503, SERVICE_UNAVAILABLE)
    assert response["Retry-After"] == "5"


@pytest.mark.parametrize("path", ["/", "/admin/", "/admin/orders/order/", "/account/orders/order_x"])
def test_middleware_answers_html_503_for_pages_without_touching_the_database(path):
    """No ``db`` fixture: pytest-django makes any database access here raise, so the page
    renders without a connection (no request, user, session or messages reach the template)."""
    middleware = DatabaseUnavailableMiddleware(lambda request: HttpResponse())

    response = middleware.process_exception(RequestFactory().get(path), OperationalError("down"))

    assert response is not None
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert response["Retry-After"] == "5"
    html = response.content.decode()
    assert "<h1>Temporarily unavailable</h1>" in html
    assert "The service is temporarily unavailable. Please retry." in html
    assert "Try again in 5 seconds" in html


def test_middleware_answers_json_on_metrics():
    middleware = DatabaseUnavailableMiddleware(lambda request: HttpResponse())

    response = middleware.process_exception(RequestFactory().get("/metrics"), InterfaceError("closed"))

    assert response is not None
    assert (response.status_code, json.loads(response.content)) == (503, SERVICE_UNAVAILABLE)


@pytest.mark.parametrize("path", ["/", "/admin/", "/store/regions"])
def test_middleware_leaves_other_errors_alone(path):
    middleware = DatabaseUnavailableMiddleware(lambda request: HttpResponse())

    assert middleware.process_exception(RequestFactory().get(path), RuntimeError("boom")) is None


class DatabaseDownAfterTheView:
    """A middleware whose response phase meets the dead database, as SessionMiddleware saving a
    modified session does: outside any view, so process_exception never sees it."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> HttpResponse:
        self.get_response(request)
        raise OperationalError("server closed the connection unexpectedly")


@pytest.mark.parametrize(
    ("path", "content_type"), [("/admin/login/", "text/html"), ("/health/live", "application/json")]
)
def test_database_error_raised_by_a_middleware_is_503_not_500(path, content_type, settings):
    from django.test import Client

    position = settings.MIDDLEWARE.index("common.middleware.DatabaseUnavailableMiddleware") + 1
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE[:position],
        f"{__name__}.DatabaseDownAfterTheView",
        *settings.MIDDLEWARE[position:],
    ]

    response = Client(raise_request_exception=False).get(path)

    assert response.status_code == 503
    assert response["Content-Type"].startswith(content_type)
    assert response["Retry-After"] == "5"


def test_the_500_handler_still_answers_500_for_a_bug(settings):
    from django.test import Client

    settings.ROOT_URLCONF = "tests.common.urls_idempotency"
    response = Client(raise_request_exception=False).post("/store/test/crash", {}, content_type="application/json")

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
