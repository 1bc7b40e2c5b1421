"""HTTP throughput benchmark of a few store endpoints under gunicorn, with and without
persistent database connections. Dev tooling only (never imported by product code).

    python -m devtools.bench [--database-url postgres://postgres@127.0.0.1:5432/checkout_bench]
                             [--requests 3000] [--concurrency 8] [--repeats 3] [--conn-max-age 60,0]

For each ``DJANGO_CONN_MAX_AGE`` value it starts ``gunicorn config.wsgi -b 127.0.0.1:<port> -w 2``
in production mode (``DJANGO_DEBUG=false``, PostgreSQL), prepares carts over HTTP, then for
every scenario sends a warm-up and ``--repeats`` measured runs of ``--requests`` requests each
from ``--concurrency`` concurrent clients (a small asyncio HTTP/1.1 client in this process), each
run bounded by ``--time-cap`` seconds. Runs are interleaved (round 1 of every scenario, then
round 2, ...) so that a burst of load from something else on the machine hits all scenarios
alike. It prints one table: best and median req/s of the runs, and p50/p95 latency of the
median run. gunicorn is stopped by its PID, also on Ctrl-C or an error.

The database is prepared first (created if missing, migrated, demo catalog loaded, plus 50
one-variant "Swatch" products so that a cart can hold 50 lines). Use a database of its own:
the benchmark leaves a few hundred carts behind. docs/benchmarks.md has results and a reading.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/checkout_bench"
SWATCHES = 50

# Idempotent: 50 products of one variant each, priced in every demo currency, stock 100,000.
SEED = f"""
from catalog.models import Price, Product, StockLevel, Variant
for n in range(1, {SWATCHES} + 1):
    product, _ = Product.objects.get_or_create(
        handle=f"bench-swatch-{{n:02d}}", defaults={{"title": f"Swatch {{n:02d}}", "description": "Benchmark data."}}
    )
    variant, _ = Variant.objects.get_or_create(sku=f"BENCH-{{n:02d}}", defaults={{"product": product, "title": "Swatch"}})
    StockLevel.objects.update_or_create(variant=variant, defaults={{"on_hand": 100000}})
    for currency, amount in {{"usd": 300, "jpy": 450, "kwd": 950, "eur": 290}}.items():
        Price.objects.update_or_create(variant=variant, currency_code=currency, defaults={{"amount": amount}})
"""


# --- HTTP client -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    name: str
    method: str
    path: str
    body: bytes = b""

    def raw(self, host: str) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}", "Accept: application/json"]
        if self.method != "GET":
            lines += ["Content-Type: application/json", f"Content-Length: {len(self.body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


class Connection:
    """One HTTP/1.1 connection, reopened whenever the server closes it (gunicorn's sync
    workers close after every response, so in practice this is one connection per request)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in header_lines:
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        else:  # no length: the body ends with the connection
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
class RunResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    capped: bool = False
    first_error: str = ""
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def drive(
    *, port: int, requests_for: Callable[[int], Request], total: int, concurrency: int, time_cap: float
) -> RunResult:
    """Send ``total`` requests from ``concurrency`` clients (client i sends ``requests_for(i)``),
    stopping early at ``time_cap`` seconds. Non-2xx answers count as errors."""
    result = RunResult()
    issued = 0
    started = time.perf_counter()
    deadline = started + time_cap

    async def client(index: int) -> None:
        nonlocal issued
        request = requests_for(index)
        raw = request.raw(f"127.0.0.1:{port}")
        conn = Connection("127.0.0.1", port)
        try:
            while issued < total:
                if time.perf_counter() > deadline:
                    result.capped = True
                    return
                issued += 1
                t0 = time.perf_counter()
                try:
                    status, body = await conn.request(raw)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    await conn.close()
                    result.errors += 1
                    result.first_error = result.first_error or f"{request.name}: {type(exc).__name__} {exc}"
                    continue
                result.latencies.append(time.perf_counter() - t0)
                result.requests += 1
                if not 200 <= status < 300:
                    result.errors += 1
                    result.first_error = result.first_error or f"{request.name}: HTTP {status} {body[:200]!r}"
        finally:
            await conn.close()

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


# --- Set-up ----------------------------------------------------------------------------------


def run(cmd: list[str], env: dict[str, str]) -> None:
    completed = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{completed.stdout}\n{completed.stderr}")


def prepare_database(url: str, env: dict[str, str]) -> None:
    import psycopg

    parsed = urlparse(url)
    dbname = parsed.path.lstrip("/")
    with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(f'CREATE DATABASE "{dbname}"')
    python = sys.executable
    run([python, "manage.py", "migrate", "--no-input", "-v", "0"], env)
    run([python, "manage.py", "load_demo_catalog"], env)
    run([python, "manage.py", "shell", "-c", SEED], env)


def server_env(database_url: str, conn_max_age: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STRIPE_", "CELERY_", "REDIS_"))}
    env.update(
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=database_url,
        DJANGO_CONN_MAX_AGE=str(conn_max_age),
        CELERY_TASK_ALWAYS_EAGER="true",
        PYTHONDONTWRITEBYTECODE="1",
        # production settings refuse to start without these; the bench serves plain HTTP on 127.0.0.1
        STRIPE_API_KEY="sk_test_bench" + secrets.token_hex(12),
        STRIPE_WEBHOOK_SECRET="whsec_bench" + secrets.token_hex(12),
        METRICS_ENABLED="false",
        DJANGO_SECURE_SSL_REDIRECT="false",
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gunicorn:
    def __init__(self, *, env: dict[str, str], workers: int, log: Path) -> None:
        self.port = free_port()
        self.log = log.open("ab")
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        self.process = subprocess.Popen(  # noqa: S603 - our own fixed command line
            [gunicorn, "config.wsgi", "-b", f"127.0.0.1:{self.port}", "-w", str(workers)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=self.log,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health/ready", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not become ready in {timeout:.0f} s; see {self.log.name}")

    def stop(self) -> None:
        """SIGTERM the master by its PID (it stops its workers), SIGKILL after 15 s."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def api(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


@dataclass
class Fixture:
    region_id: str
    one_line_cart: str
    fifty_line_cart: str
    add_variant: str
    swatches: list[str]


def fixture(port: int) -> Fixture:
    regions = api(port, "GET", "/store/regions")["regions"]
    region_id = next(r["id"] for r in regions if r["currency_code"] == "usd")
    variants: dict[str, str] = {}
    path: str | None = f"/store/products?region_id={region_id}&limit=100"
    while path:
        page = api(port, "GET", path)
        for product in page["products"]:
            for variant in product["variants"]:
                variants[variant["sku"]] = variant["id"]
        path = urlparse(page["next"])._replace(scheme="", netloc="").geturl() if page["next"] else None
    swatches = [variants[f"BENCH-{n:02d}"] for n in range(1, SWATCHES + 1)]
    one = new_cart(port, region_id, [variants["COT-POP-WHT"]])
    fifty = new_cart(port, region_id, swatches)
    return Fixture(region_id, one, fifty, variants["COT-POP-WHT"], swatches)


def new_cart(port: int, region_id: str, variant_ids: list[str]) -> str:
    items = [{"variant_id": v, "quantity": 1} for v in variant_ids]
    cart = api(port, "POST", "/store/carts", {"region_id": region_id, "items": items})["cart"]
    assert len(cart["items"]) == len(variant_ids), cart
    return str(cart["id"])


# --- Scenarios -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    # (port, fixture, concurrency) -> request of client i; called once per run, so a
    # writing scenario can give every client a fresh cart of its own.
    make: Callable[[int, Fixture, int], Callable[[int], Request]]


def _get(name: str, path: Callable[[Fixture], str]) -> Scenario:
    def build(port: int, fx: Fixture, concurrency: int) -> Callable[[int], Request]:
        request = Request(name, "GET", path(fx))  # the same request every time
        return lambda i: request

    return Scenario(name, build)


def _add_line(port: int, fx: Fixture, concurrency: int) -> Callable[[int], Request]:
    # One fresh 1-line cart per client: the same variant is merged into the line (quantity + 1),
    # and no two clients wait for the same cart row lock.
    carts = [new_cart(port, fx.region_id, [fx.add_variant]) for _ in range(concurrency)]
    body = json.dumps({"variant_id": fx.add_variant, "quantity": 1}).encode()
    requests = [Request("add line", "POST", f"/store/carts/{cart}/line-items", body) for cart in carts]
    return lambda i: requests[i]


SCENARIOS = [
    _get("GET /health/live", lambda fx: "/health/live"),
    _get("GET /store/regions", lambda fx: "/store/regions"),
    _get("GET /store/products?region_id=usd", lambda fx: f"/store/products?region_id={fx.region_id}"),
    _get("GET /store/carts/{id} (1 line)", lambda fx: f"/store/carts/{fx.one_line_cart}"),
    _get("GET /store/carts/{id} (50 lines)", lambda fx: f"/store/carts/{fx.fifty_line_cart}"),
    Scenario("POST /store/carts/{id}/line-items", _add_line),
]


# --- Main ------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    info = {"nproc": str(os.cpu_count()), "python": platform.python_version(), "platform": platform.platform()}
    try:
        import psycopg

        with psycopg.connect(os.environ["BENCH_DATABASE_URL"], connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            info["postgresql"] = str(row[0]) if row else "?"
    except Exception as exc:  # noqa: BLE001 - informational only
        info["postgresql"] = f"unknown ({type(exc).__name__})"
    try:
        version = subprocess.run(
            [str(Path(sys.executable).with_name("gunicorn")), "--version"], capture_output=True, text=True, check=False
        )
        info["gunicorn"] = (version.stdout or version.stderr).strip()
    except OSError:
        info["gunicorn"] = "?"
    return info


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--requests", type=int, default=3000, help="per measured run (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=300, help="per scenario and server, not measured")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="measured runs per scenario (default %(default)s)")
    parser.add_argument("--time-cap", type=float, default=60.0, help="seconds per run (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default %(default)s)")
    parser.add_argument("--conn-max-age", default="60,0", help="DJANGO_CONN_MAX_AGE values (default %(default)s)")
    parser.add_argument("--only", default="", help="run only scenarios whose name contains this")
    parser.add_argument("--json-out", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--log", type=Path, default=Path("/tmp/bench-gunicorn.log"))
    args = parser.parse_args(argv)

    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must be a PostgreSQL URL")
    os.environ["BENCH_DATABASE_URL"] = args.database_url
    modes = [int(v) for v in args.conn_max_age.split(",") if v.strip()]
    scenarios = [s for s in SCENARIOS if args.only.lower() in s.name.lower()]

    print(
        f"preparing {urlparse(args.database_url).path.lstrip('/')} (migrate, demo catalog, {SWATCHES} swatches)",
        flush=True,
    )
    prepare_database(args.database_url, server_env(args.database_url, 0))
    info = machine()
    print(
        f"machine: {info['nproc']} CPUs, Python {info['python']}, PostgreSQL {info['postgresql']}, {info['gunicorn']}",
        flush=True,
    )

    results: dict[tuple[int, str], list[RunResult]] = {}
    for conn_max_age in modes:
        print(f"\n== gunicorn -w {args.workers}, DJANGO_CONN_MAX_AGE={conn_max_age}", flush=True)
        server = Gunicorn(env=server_env(args.database_url, conn_max_age), workers=args.workers, log=args.log)
        try:
            fx = fixture(server.port)
            for scenario in scenarios:  # warm-up: imports, caches, (persistent) connections
                warm = asyncio.run(
                    drive(
                        port=server.port,
                        requests_for=scenario.make(server.port, fx, args.concurrency),
                        total=args.warmup,
                        concurrency=args.concurrency,
                        time_cap=args.time_cap,
                    )
                )
                if warm.errors:
                    raise RuntimeError(f"warm-up of {scenario.name} failed: {warm.first_error}")
            for round_no in range(1, args.repeats + 1):
                for scenario in scenarios:
                    requests_for = scenario.make(server.port, fx, args.concurrency)
                    load_before = os.getloadavg()[0]
                    result = asyncio.run(
                        drive(
                            port=server.port,
                            requests_for=requests_for,
                            total=args.requests,
                            concurrency=args.concurrency,
                            time_cap=args.time_cap,
                        )
                    )
                    result.load = (load_before, os.getloadavg()[0])
                    results.setdefault((conn_max_age, scenario.name), []).append(result)
                    flag = " (time cap)" if result.capped else ""
                    errors = f", {result.errors} errors: {result.first_error}" if result.errors else ""
                    print(
                        f"  round {round_no} {scenario.name:<36} {result.rps:7.0f} req/s  "
                        f"p50 {fmt_ms(result.percentile(50))} ms  p95 {fmt_ms(result.percentile(95))} ms  "
                        f"load {result.load[0]:.1f}->{result.load[1]:.1f}{flag}{errors}",
                        flush=True,
                    )
        finally:
            server.stop()

    print(
        f"\n{args.requests} requests per run, concurrency {args.concurrency}, {args.repeats} runs per scenario; "
        "p50/p95 of the median run"
    )
    header = f"| {'scenario':<36} | CONN_MAX_AGE | best req/s | median req/s | p50 ms | p95 ms | errors |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    rows = []
    for scenario in scenarios:
        for conn_max_age in modes:
            runs = results.get((conn_max_age, scenario.name), [])
            if not runs:
                continue
            by_rps = sorted(runs, key=lambda r: r.rps)
            median_run = by_rps[len(by_rps) // 2]
            errors = sum(r.errors for r in runs)
            row = {
                "scenario": scenario.name,
                "conn_max_age": conn_max_age,
                "best_rps": round(by_rps[-1].rps, 1),
                "median_rps": round(statistics.median(r.rps for r in runs), 1),
                "p50_ms": round(median_run.percentile(50) * 1000, 2),
                "p95_ms": round(median_run.percentile(95) * 1000, 2),
                "errors": errors,
                "runs": [
                    {
                        "rps": round(r.rps, 1),
                        "requests": r.requests,
                        "seconds": round(r.seconds, 3),
                        "capped": r.capped,
                        "p50_ms": round(r.percentile(50) * 1000, 2),
                        "p95_ms": round(r.percentile(95) * 1000, 2),
                        "load": [round(x, 2) for x in r.load],
                    }
                    for r in runs
                ],
            }
            rows.append(row)
            print(
                f"| {scenario.name:<36} | {conn_max_age:>12} | {row['best_rps']:>10.0f} | {row['median_rps']:>12.0f} "
                f"| {row['p50_ms']:>6.1f} | {row['p95_ms']:>6.1f} | {errors:>6} |"
            )
    if args.json_out:
        args.json_out.write_text(
            json.dumps({"machine": info, "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2)
        )
    return 1 if any(row["errors"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
