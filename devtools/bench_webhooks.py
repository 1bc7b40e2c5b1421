"""Webhook acknowledgement benchmark: signed Stripe events against ``POST /webhooks/stripe``
under gunicorn in production mode, with a real Celery worker behind it. Dev tooling only.

    python -m devtools.bench_webhooks [--app-root .] [--database-url postgres://.../checkout_bench_webhooks]
                                      [--redis-url redis://127.0.0.1:6379/0] [--clients 8] [--events 5000]
                                      [--warmup 500] [--json-out results.json]

``run()`` (also imported by other benchmarks):

1. prepares the database (created if missing, ``manage.py migrate`` of ``app_root``);
2. starts ``gunicorn config.wsgi -c config/gunicorn.conf.py -b 127.0.0.1:<free port>`` from
   ``app_root`` in production mode (``DJANGO_DEBUG=false``, fresh random secrets, PostgreSQL,
   the Redis cache and broker) and ``celery -A config worker`` on a private queue (every task of
   the run goes there: ``CELERY_TASK_DEFAULT_QUEUE`` and ``WEBHOOK_TASK_QUEUE``), both stopped
   by their PIDs at the end, also on an error. The gunicorn worker count, class and threads are
   whatever ``config/gunicorn.conf.py`` of ``app_root`` says; ``WEB_CONCURRENCY`` (gunicorn's
   own default for ``--workers``) and ``CELERY_CONCURRENCY`` pass through from the caller;
3. builds ``warmup + events`` realistic events (``EVENT_MIX``: Stripe's example objects from
   ``../shared/stripe/fixtures3.json`` with fresh ids, in Stripe's event envelope, pretty-printed
   as Stripe sends them) and signs each one (``Stripe-Signature: t=..,v1=HMAC-SHA256``);
4. posts the warm-up events from ``clients`` concurrent keep-alive HTTP/1.1 connections and
   waits until the worker has processed them (the whole chain works), then the measured events
   the same way, timing each request from its first byte sent to its last byte received;
5. waits until every measured event is processed (or failed) and reads the inbox rows.

Returned numbers: ``acks_per_s`` (measured events / wall time of the measured phase),
``ack_p50_ms`` / ``ack_p99_ms`` (request latencies), ``worker_events_per_s`` (measured events
processed / time from the first processing to the last), ``lag_p50_s`` / ``lag_p99_s``
(``processed_at - received_at`` of the measured rows), plus counts (``errors``,
``processed``, ``failed``, ``unprocessed``) and the 1-minute load average before and after.

The event types in ``EVENT_MIX`` are ones our handlers store and acknowledge without calling
Stripe: the money events (``payment_intent.*``, ``charge.*``, ``refund.*``) make the worker
re-read the PaymentIntent from Stripe, which this benchmark does not run. The acknowledgement
path is the same for every type.

Use a database of its own (the inbox rows are left behind). The machine may be shared: the
load average is part of the result for that reason.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
# Stripe's OpenAPI example objects (MIT, see LICENSE-stripe-openapi next to it)
FIXTURES = Path(os.environ.get("BENCH_STRIPE_FIXTURES", ROOT.parent / "shared" / "stripe" / "fixtures3.json"))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/checkout_bench_webhooks"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
WEBHOOK_PATH = "/webhooks/stripe"
STRIPE_API_VERSION = "2026-05-27.dahlia"

# (event type, Stripe example object, weight): what a shop's endpoint receives besides the money
# events, each stored and acknowledged by the worker without a Stripe call.
EVENT_MIX: list[tuple[str, str, int]] = [
    ("customer.created", "customer", 2),
    ("customer.updated", "customer", 2),
    ("payment_method.attached", "payment_method", 3),
    ("checkout.session.completed", "checkout.session", 1),
    ("invoice.paid", "invoice", 1),
    ("price.updated", "price", 1),
]
ID_PREFIXES = {
    "customer": "cus",
    "payment_method": "pm",
    "checkout.session": "cs_test",
    "invoice": "in",
    "price": "price",
}


# --- Events ------------------------------------------------------------------------------------


def _examples() -> dict[str, Any]:
    return dict(json.loads(FIXTURES.read_text())["resources"])


def build_events(*, count: int, run_id: str) -> list[bytes]:
    """``count`` event bodies, types in ``EVENT_MIX`` proportions, every id unique to this run."""
    examples = _examples()
    envelope = examples["event"]
    cycle = [(t, name) for t, name, weight in EVENT_MIX for _ in range(weight)]
    now = int(time.time())
    bodies = []
    for n in range(count):
        event_type, name = cycle[n % len(cycle)]
        obj = copy.deepcopy(examples[name])
        obj["id"] = f"{ID_PREFIXES[name]}_bench{run_id}{n:07d}"
        event = copy.deepcopy(envelope)
        event.update(
            id=f"evt_bench{run_id}{n:07d}",
            type=event_type,
            created=now,
            livemode=False,
            api_version=STRIPE_API_VERSION,
            data={"object": obj},
        )
        event["request"] = {"id": None, "idempotency_key": None}
        bodies.append(json.dumps(event, indent=2).encode())  # Stripe sends pretty-printed JSON
    return bodies


def sign(*, payload: bytes, secret: str, timestamp: int) -> str:
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


def raw_requests(*, bodies: list[bytes], secret: str, port: int) -> list[bytes]:
    """The complete HTTP/1.1 requests, signed now (the signature tolerance is 300 s)."""
    ts = int(time.time())
    head = f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\nAccept: */*; q=0.5, application/xml\r\nContent-Type: application/json; charset=utf-8\r\n"
    return [
        (
            head
            + f"Stripe-Signature: {sign(payload=b, secret=secret, timestamp=ts)}\r\nContent-Length: {len(b)}\r\n\r\n"
        ).encode()
        + b
        for b in bodies
    ]


# --- HTTP client ------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection, reopened when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.opened = 0

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.opened += 1
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in header_lines:
            key, sep, value = line.partition(":")
            if sep:
                headers[key.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        else:
            body = await self.reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


@dataclass
class Phase:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    connections: int = 0


async def _drive(*, port: int, requests: list[bytes], clients: int) -> Phase:
    phase = Phase()
    pending = iter(requests)

    async def client() -> None:
        conn = Connection(port)
        try:
            for raw in pending:  # a shared iterator: each request goes to exactly one client
                t0 = time.perf_counter()
                try:
                    status, body = await conn.request(raw)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    await conn.close()
                    phase.errors += 1
                    phase.first_error = phase.first_error or f"{type(exc).__name__}: {exc}"
                    continue
                phase.latencies.append(time.perf_counter() - t0)
                if status != 200:
                    phase.errors += 1
                    phase.first_error = phase.first_error or f"HTTP {status} {body[:200]!r}"
        finally:
            phase.connections += conn.opened
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    phase.seconds = time.perf_counter() - started
    return phase


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --- Processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(*, database_url: str, redis_url: str, queue: str, webhook_secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STRIPE_", "CELERY_", "REDIS_"))}
    env.update(
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        CELERY_TASK_DEFAULT_QUEUE=queue,
        WEBHOOK_TASK_QUEUE=queue,
        PYTHONDONTWRITEBYTECODE="1",
        # production refuses to start without these; nothing here calls Stripe
        STRIPE_API_KEY="sk_test_" + "bench" + secrets.token_hex(12),
        STRIPE_WEBHOOK_SECRET=webhook_secret,
        METRICS_ENABLED="false",
        DJANGO_SECURE_SSL_REDIRECT="false",  # plain HTTP on 127.0.0.1, no TLS proxy in front
    )
    return env


class Child:
    """A process of ours, its output in a log file, stopped by its PID."""

    def __init__(self, *, name: str, command: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log_path = log
        self.log = log.open("ab")
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=self.log, stderr=self.log)  # noqa: S603

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM by PID (gunicorn's master stops its workers; Celery finishes its task), SIGKILL after 20 s."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def _wait_http_ready(server: Child, port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2) as r:  # noqa: S310
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer in {timeout:.0f} s; see {server.log_path}")


def prepare_database(*, app_root: Path, database_url: str, env: dict[str, str]) -> None:
    import psycopg

    parsed = urlparse(database_url)
    dbname = parsed.path.lstrip("/")
    with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(f'CREATE DATABASE "{dbname}"')
    done = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=app_root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{done.stdout}\n{done.stderr}")


def _inbox(database_url: str, event_ids: list[str]) -> list[tuple[str, Any, Any]]:
    import psycopg

    with psycopg.connect(database_url, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT status, received_at, processed_at FROM webhooks_webhookevent WHERE stripe_event_id = ANY(%s)",
            (event_ids,),
        ).fetchall()
    return [(str(r[0]), r[1], r[2]) for r in rows]


def _wait_processed(
    *, database_url: str, event_ids: list[str], worker: Child, timeout: float
) -> list[tuple[str, Any, Any]]:
    """Poll the inbox until every row is processed or failed (or the timeout): the rows."""
    deadline = time.monotonic() + timeout
    while True:
        rows = _inbox(database_url, event_ids)
        settled = sum(1 for status, *_ in rows if status in ("processed", "failed"))
        if settled == len(event_ids) or time.monotonic() > deadline:
            return rows
        worker.check_alive()
        time.sleep(0.5)


def _forget_queue(redis_url: str, queue: str) -> None:
    """Delete the private queue and its kombu binding keys: nothing of the run stays in Redis."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(queue, f"_kombu.binding.{queue}", *client.keys(f"{queue}\x06\x16*"))
    finally:
        client.close()


def load_average() -> float:
    return os.getloadavg()[0]


# --- The benchmark ----------------------------------------------------------------------------


def run(
    *, app_root: Path, database_url: str, redis_url: str, clients: int = 8, events: int = 5000, warmup: int = 500
) -> dict[str, Any]:
    """Start the app of ``app_root`` (gunicorn + a Celery worker), post ``warmup`` then ``events``
    signed events from ``clients`` keep-alive connections, and measure acknowledgement and processing."""
    app_root = Path(app_root).resolve()
    run_id = secrets.token_hex(4)
    queue = f"bench-webhooks-{run_id}"
    webhook_secret = "whsec_" + "bench" + secrets.token_hex(16)
    env = server_env(database_url=database_url, redis_url=redis_url, queue=queue, webhook_secret=webhook_secret)
    logs = Path(os.environ.get("BENCH_LOG_DIR", "/tmp"))
    prepare_database(app_root=app_root, database_url=database_url, env=env)

    bodies = build_events(count=warmup + events, run_id=run_id)
    ids = [str(json.loads(b)["id"]) for b in bodies]
    port = free_port()
    bin_dir = Path(sys.executable).parent
    children: list[Child] = []
    try:
        worker = Child(
            name="celery",
            command=[
                str(bin_dir / "celery"),
                "-A",
                "config",
                "worker",
                "-l",
                "info",
                "-Q",
                queue,
                "--concurrency",
                os.environ.get("CELERY_CONCURRENCY", "4"),
                "-n",
                f"bench-{run_id}@%h",
            ],
            cwd=app_root,
            env=env,
            log=logs / f"bench-webhooks-celery-{run_id}.log",
        )
        children.append(worker)
        server = Child(
            name="gunicorn",
            command=[
                str(bin_dir / "gunicorn"),
                "config.wsgi",
                "-c",
                "config/gunicorn.conf.py",
                "-b",
                f"127.0.0.1:{port}",
            ],
            cwd=app_root,
            env=env,
            log=logs / f"bench-webhooks-gunicorn-{run_id}.log",
        )
        children.append(server)
        _wait_http_ready(server, port)

        load_before = load_average()
        warm = asyncio.run(
            _drive(
                port=port,
                requests=raw_requests(bodies=bodies[:warmup], secret=webhook_secret, port=port),
                clients=clients,
            )
        )
        if warm.errors:
            raise RuntimeError(f"warm-up: {warm.errors} failed requests, first: {warm.first_error}")
        _wait_processed(database_url=database_url, event_ids=ids[:warmup], worker=worker, timeout=120)

        measured = asyncio.run(
            _drive(
                port=port,
                requests=raw_requests(bodies=bodies[warmup:], secret=webhook_secret, port=port),
                clients=clients,
            )
        )
        load_after = load_average()
        rows = _wait_processed(
            database_url=database_url, event_ids=ids[warmup:], worker=worker, timeout=max(120.0, events / 20)
        )
    finally:
        for child in reversed(children):
            child.stop()
        try:
            _forget_queue(redis_url, queue)
        except Exception as exc:  # noqa: BLE001 - cleanup only
            print(f"could not clean queue {queue}: {exc}", file=sys.stderr)

    done = [(received, processed) for status, received, processed in rows if status == "processed"]
    lags = [(processed - received).total_seconds() for received, processed in done]
    processed_at = sorted(processed for _, processed in done)
    span = (processed_at[-1] - processed_at[0]).total_seconds() if len(processed_at) > 1 else 0.0
    return {
        "clients": clients,
        "events": events,
        "acks_per_s": round(events / measured.seconds, 1) if measured.seconds else 0.0,
        "ack_p50_ms": round(percentile(measured.latencies, 50) * 1000, 2),
        "ack_p99_ms": round(percentile(measured.latencies, 99) * 1000, 2),
        "ack_mean_ms": round(statistics.fmean(measured.latencies) * 1000, 2) if measured.latencies else None,
        "worker_events_per_s": round((len(done) - 1) / span, 1) if span else 0.0,
        "lag_p50_s": round(percentile(lags, 50), 3),
        "lag_p99_s": round(percentile(lags, 99), 3),
        "errors": measured.errors,
        "first_error": measured.first_error,
        "connections_opened": measured.connections,
        "stored": len(rows),
        "processed": len(done),
        "failed": sum(1 for status, *_ in rows if status == "failed"),
        "unprocessed": events - sum(1 for status, *_ in rows if status in ("processed", "failed")),
        "load_1min_before": round(load_before, 2),
        "load_1min_after": round(load_after, 2),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--app-root", type=Path, default=ROOT)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must be a PostgreSQL URL")
    result = run(
        app_root=args.app_root,
        database_url=args.database_url,
        redis_url=args.redis_url,
        clients=args.clients,
        events=args.events,
        warmup=args.warmup,
    )
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["errors"] or result["unprocessed"] else 0


if __name__ == "__main__":
    sys.exit(main())
