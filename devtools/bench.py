"""The project's benchmark: the current tree against a baseline ref, under gunicorn in production
mode, and a minimal DRF app as the framework ceiling. Dev tooling only (never imported by
product code). docs/benchmarks.md explains every row and records a run.

    python -m devtools.bench [--baseline 22adadc | none] [--rounds 2] [--checkouts 40] [--requests 1000]
                             [--database-url postgres://postgres@127.0.0.1:5432/checkout_bench]
                             [--redis-urls redis://127.0.0.1:6379/13,redis://127.0.0.1:6379/14]
                             [--latency-ms 150] [--json-out f] [--quick]

The baseline ref is checked out in a temporary ``git worktree`` (removed at the end). Each tree
is served by its own gunicorn (``-c config/gunicorn.conf.py``, ``-w 2``, its worker class,
DJANGO_DEBUG=false, secrets set by the bench, 127.0.0.1) on its own, recreated database
(``<name>`` and ``<name>_base``: migrated, demo catalog, bench products) and Redis DB. The
driver, the Stripe stand-in (instant, and ``--latency-ms`` per /v1/ request) and the ceiling
(devtools/ceiling/) always come from the current tree. Both trees' servers run side by side and
every scenario runs on one right after the other (who goes first alternates), so machine load
hits both alike.

Per tree and round: checkouts at 1/4/8/16 clients with the instant stand-in (CPU time of the
gunicorn processes over them) and with the slow one; cart read and cart write throughput; the
hot-SKU race (stock 100, 300 buyers at once). Once per tree: exact SQL counts per step
(devtools/bench_sql.py) and, when devtools/bench_webhooks.py is there, the webhook row.
It prints one markdown table (baseline, current, current/baseline) and writes the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from devtools import bench_servers as servers
from devtools.bench_checkout import CheckoutResult, run_checkouts, run_hot_sku
from devtools.bench_http import Request, RunResult, drive, percentile, post_json
from devtools.bench_sql import STEPS, fixture_ids
from devtools.localstripe_server import start_localstripe, stop

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/checkout_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13,redis://127.0.0.1:6379/14"
DEFAULT_BASELINE = "22adadc"
LEVELS = (1, 4, 8, 16)
STEP_LEVEL = 8  # the per-step latency rows are those of the 8-client instant run


def http_json(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if body is not None:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def app_fixture(port: int) -> dict[str, str]:
    return fixture_ids(
        lambda path: http_json(port, "GET", path)[1], lambda path, body: http_json(port, "POST", path, body)
    )


def sql_counts(tree: servers.Tree, *, stripe_base: str, profile: Path | None) -> dict[str, Any]:
    command = [servers.PYTHON, str(servers.ROOT / "devtools" / "bench_sql.py"), "--tree", str(tree.root)]
    command += ["--stripe-base", stripe_base] + (["--profile", str(profile)] if profile else [])
    out = servers.run(command, cwd=tree.root, env=servers.base_env(tree, stripe_base=stripe_base))
    return dict(json.loads(out.strip().splitlines()[-1]))


def cart_scenarios(port: int, fx: dict[str, str], *, requests: int, concurrency: int) -> dict[str, RunResult]:
    """Cart GET (a 1-line cart) and cart write (add a line to a cart of the client's own)."""
    carts = [http_json(port, "POST", "/store/carts", _cart_body(fx))[1]["cart"]["id"] for _ in range(concurrency)]
    read = Request("cart GET", "GET", f"/store/carts/{carts[0]}")
    line = {"variant_id": fx["add_variant_id"], "quantity": 1}

    def write(i: int, n: int) -> Request:
        return post_json("cart write", f"/store/carts/{carts[i]}/line-items", line, key=str(uuid.uuid4()))

    out = {}
    for name, make in (("cart_get", lambda i, n: read), ("cart_write", write)):
        asyncio.run(drive(port=port, make=make, total=max(requests // 10, concurrency), concurrency=concurrency))
        out[name] = asyncio.run(drive(port=port, make=make, total=requests, concurrency=concurrency))
    return out


def ceiling_scenarios(port: int, items: list[int], *, requests: int, concurrency: int) -> dict[str, RunResult]:
    def read(i: int, n: int) -> Request:
        return Request("ceiling GET", "GET", f"/items/{items[0]}")

    def write(i: int, n: int) -> Request:
        return post_json("ceiling POST", f"/items/{items[i % len(items)]}", {"quantity": n})

    out = {}
    for name, make in (("ceiling_get", read), ("ceiling_post", write)):
        asyncio.run(drive(port=port, make=make, total=max(requests // 10, concurrency), concurrency=concurrency))
        out[name] = asyncio.run(drive(port=port, make=make, total=requests, concurrency=concurrency))
    return out


def _cart_body(fx: dict[str, str]) -> dict[str, Any]:
    return {"region_id": fx["region_id"], "items": [{"variant_id": fx["variant_id"], "quantity": 1}]}


@contextlib.contextmanager
def served(server: servers.Gunicorn) -> Iterator[servers.Gunicorn]:
    try:
        yield server
    finally:
        server.stop()


class Bench:
    def __init__(self, args: argparse.Namespace, trees: list[servers.Tree], stand_ins: dict[str, str], logs: Path):
        self.args, self.trees, self.stand_ins, self.logs = args, trees, stand_ins, logs
        self.checkouts: dict[tuple[str, str, int], list[CheckoutResult]] = {}
        self.carts: dict[tuple[str, str], list[RunResult]] = {}
        self.hot: dict[str, list[dict[str, Any]]] = {}
        self.ceiling: dict[tuple[str, str], list[RunResult]] = {}
        self.ceiling_port = 0
        self.ceiling_items: list[int] = []

    def say(self, line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {line}", flush=True)

    def server(self, tree: servers.Tree, mode: str) -> servers.Gunicorn:
        return servers.app_server(
            tree, stripe_base=self.stand_ins[mode], workers=self.args.workers, log=self.logs / f"{tree.label}.log"
        )

    def checkout_level(
        self, tree: servers.Tree, mode: str, server: servers.Gunicorn, fx: dict[str, str], clients: int
    ) -> None:
        stripe_port = int(urlparse(self.stand_ins[mode]).port or 0)
        total = max(self.args.checkouts, clients)  # every client completes at least one
        cpu0 = server.cpu_seconds()
        result = asyncio.run(
            run_checkouts(port=server.port, stripe_port=stripe_port, fx=fx, clients=clients, total=total)
        )
        result.cpu_seconds = server.cpu_seconds() - cpu0
        self.checkouts.setdefault((tree.label, mode, clients), []).append(result)
        s = result.summary()
        self.say(
            f"  {tree.label} {mode} {clients:>2} clients: {s['per_second']:.1f} checkouts/s, "
            f"{s['cpu_per_checkout']} CPU-s each, {result.failed} failed {result.first_error[:200]}"
        )

    def round(self, number: int) -> None:
        """Both trees' servers run side by side; every scenario runs on one tree right after the
        other, the tree going first alternating from one scenario to the next (and per round)."""
        turn = number

        def order() -> list[servers.Tree]:
            nonlocal turn
            turn += 1
            return list(self.trees) if turn % 2 else list(reversed(self.trees))

        for mode in ("instant", "latency"):
            what = "instant stand-in" if mode == "instant" else f"stand-in at {self.args.latency_ms} ms per call"
            self.say(f"round {number}: {what}")
            with contextlib.ExitStack() as stack:
                running = {t.label: stack.enter_context(served(self.server(t, mode))) for t in self.trees}
                fxs = {label: app_fixture(server.port) for label, server in running.items()}
                stripe_port = int(urlparse(self.stand_ins[mode]).port or 0)
                for label, server in running.items():  # warm-up: imports, connections
                    asyncio.run(
                        run_checkouts(port=server.port, stripe_port=stripe_port, fx=fxs[label], clients=2, total=2)
                    )
                for clients in LEVELS:
                    for tree in order():
                        self.checkout_level(tree, mode, running[tree.label], fxs[tree.label], clients)
                if mode == "latency":
                    continue
                for tree in order():
                    port = running[tree.label].port
                    for name, result in cart_scenarios(
                        port, fxs[tree.label], requests=self.args.requests, concurrency=self.args.concurrency
                    ).items():
                        self.carts.setdefault((tree.label, name), []).append(result)
                        self.say(f"  {tree.label} {name}: {result.rps:.0f} req/s, {result.errors} errors")
                    self.measure_ceiling(tree)
                if self.args.hot_rounds is None or number <= self.args.hot_rounds:
                    for tree in order():
                        self.hot_sku(tree, running[tree.label].port, fxs[tree.label])

    def rounds(self) -> None:
        """Every round; the ceiling app is served throughout and measured right after each tree's
        cart runs, so the percentage compares numbers taken under the same outside load."""
        current = self.trees[-1]
        self.ceiling_items = servers.prepare_ceiling(current.database_url, self.args.concurrency)
        log = self.logs / "ceiling.log"
        ceiling = servers.ceiling_server(
            current.database_url, workers=self.args.workers, log=log, item_id=self.ceiling_items[0]
        )
        with served(ceiling):
            self.ceiling_port = ceiling.port
            for number in range(1, self.args.rounds + 1):
                self.round(number)

    def measure_ceiling(self, tree: servers.Tree) -> None:
        for name, result in ceiling_scenarios(
            self.ceiling_port, self.ceiling_items, requests=self.args.requests, concurrency=self.args.concurrency
        ).items():
            self.ceiling.setdefault((tree.label, name), []).append(result)
            self.say(f"  {name} (next to {tree.label}): {result.rps:.0f} req/s, {result.errors} errors")

    def hot_sku(self, tree: servers.Tree, port: int, fx: dict[str, str]) -> None:
        stock, buyers = self.args.hot_stock, self.args.hot_buyers
        sold_before = servers.hot_sku_reset(tree.database_url, stock)
        stripe_port = int(urlparse(self.stand_ins["instant"]).port or 0)
        result = asyncio.run(run_hot_sku(port=port, stripe_port=stripe_port, fx=fx, buyers=buyers))
        sold = servers.hot_sku_sold(tree.database_url) - sold_before
        row = {
            "stock": stock,
            "buyers": buyers,
            "orders": result.completed,
            "units_sold": sold,
            "oversold": max(0, sold - stock),
            "sold_out": result.sold_out,
            "failed": result.failed,
            "first_error": result.first_error,
            "seconds": round(result.seconds, 3),
            "orders_per_s": round(result.completed / result.seconds, 2) if result.seconds else 0.0,
        }
        self.hot.setdefault(tree.label, []).append(row)
        self.say(f"  {tree.label} hot SKU: {row}")


# --- Summary and table -------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def summarize(bench: Bench, sql: dict[str, dict[str, Any]], webhooks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tree in bench.trees:
        label = tree.label
        row: dict[str, Any] = {"ref": tree.ref, "sql": sql.get(label), "webhooks": webhooks.get(label)}
        for mode in ("instant", "latency"):
            for clients in LEVELS:
                runs = bench.checkouts.get((label, mode, clients), [])
                row[f"checkouts_per_s_{mode}_{clients}"] = _median([r.per_second for r in runs])
                row[f"failed_{mode}_{clients}"] = sum(r.failed for r in runs)
        step_runs = bench.checkouts.get((label, "instant", STEP_LEVEL), [])
        row["steps"] = {
            step: {
                "p50_ms": round(percentile([v for r in step_runs for v in r.steps[step]], 50) * 1000, 1),
                "p95_ms": round(percentile([v for r in step_runs for v in r.steps[step]], 95) * 1000, 1),
            }
            for step in STEPS
        }
        instant = [
            r for (lb, mode, _), runs in bench.checkouts.items() if lb == label and mode == "instant" for r in runs
        ]
        done = sum(r.completed for r in instant)
        row["cpu_s_per_checkout"] = round(sum(r.cpu_seconds for r in instant) / done, 4) if done else None
        for name in ("cart_get", "cart_write"):
            cart_runs = bench.carts.get((label, name), [])
            row[f"{name}_rps"] = _median([r.rps for r in cart_runs])
            row[f"{name}_errors"] = sum(r.errors for r in cart_runs)
        for name in ("ceiling_get", "ceiling_post"):
            ceiling_runs = bench.ceiling.get((label, name), [])
            row[f"{name}_rps"] = _median([r.rps for r in ceiling_runs])
            row[f"{name}_errors"] = sum(r.errors for r in ceiling_runs)
        row["cart_get_pct_ceiling"] = _pct(row["cart_get_rps"], row["ceiling_get_rps"])
        row["cart_write_pct_ceiling"] = _pct(row["cart_write_rps"], row["ceiling_post_rps"])
        hot = bench.hot.get(label, [])
        row["hot_orders_per_s"] = _median([h["orders_per_s"] for h in hot])
        row["hot_orders"] = sum(h["orders"] for h in hot)
        row["hot_oversold"] = sum(h["oversold"] for h in hot)
        row["hot_runs"] = hot
        out[label] = row
    return out


def _pct(value: float | None, ceiling: float | None) -> float | None:
    return round(100 * value / ceiling, 1) if value and ceiling else None


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)


def _ratio(base: Any, current: Any) -> str:
    if isinstance(base, int | float) and isinstance(current, int | float) and base:
        return f"{current / base:.2f}"
    return "n/a"


def _dig(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def table_rows(summary: dict[str, Any], latency_ms: int) -> list[tuple[str, Any, Any, str]]:
    base, cur = summary.get("baseline", {}), summary["current"]
    rows: list[tuple[str, Any, Any, str]] = []

    def add(name: str, path: tuple[str, ...], goal: str = "") -> None:
        rows.append((name, _dig(base, path), _dig(cur, path), goal))

    for mode, label in (("instant", "instant stand-in"), ("latency", f"stand-in {latency_ms} ms/call")):
        for clients in LEVELS:
            goal = ">= 3x baseline" if mode == "instant" else ""
            add(f"checkouts/s, {clients} clients, {label}", (f"checkouts_per_s_{mode}_{clients}",), goal)
    for step in STEPS:
        add(f"{step}: p50 ms ({STEP_LEVEL} clients)", ("steps", step, "p50_ms"))
        add(f"{step}: p95 ms ({STEP_LEVEL} clients)", ("steps", step, "p95_ms"))
    step_goals = {"complete": "<= 25", "payment session": "<= 20"}
    for step in STEPS:
        add(f"SQL: {step}", ("sql", "steps", step), step_goals.get(step, ""))
    add("SQL: whole checkout (7 steps, idempotency records incl.)", ("sql", "checkout"), "<= 60")
    add("SQL: cart GET", ("sql", "cart_get"))
    add("SQL: cart write (add line)", ("sql", "cart_write"), "<= 6")
    add("CPU-s per checkout (gunicorn master + workers)", ("cpu_s_per_checkout",), "<= 0.10")
    add("cart GET req/s", ("cart_get_rps",))
    add("ceiling GET req/s (measured next to it)", ("ceiling_get_rps",))
    add("cart GET, % of ceiling GET", ("cart_get_pct_ceiling",), ">= 60 %")
    add("cart write req/s", ("cart_write_rps",))
    add("ceiling POST req/s (measured next to it)", ("ceiling_post_rps",))
    add("cart write, % of ceiling POST", ("cart_write_pct_ceiling",), ">= 50 %")
    add("hot SKU orders/s", ("hot_orders_per_s",))
    add("hot SKU orders placed (all rounds)", ("hot_orders",))
    add("hot SKU oversold", ("hot_oversold",), "0")
    add("webhook acks/s", ("webhooks", "acks_per_s"), ">= 500")
    add("webhook ack p99 ms", ("webhooks", "ack_p99_ms"), "< 15")
    add("worker events/s", ("webhooks", "worker_events_per_s"), ">= 100")
    add("worker lag p99 s", ("webhooks", "lag_p99_s"), "< 2")
    return rows


def render(summary: dict[str, Any], latency_ms: int) -> str:
    base_ref = summary.get("baseline", {}).get("ref", "none")
    lines = [
        f"| metric | baseline ({base_ref}) | current ({summary['current']['ref']}) | current / baseline | goal |",
        "|---|---:|---:|---:|---|",
    ]
    for name, base, cur, goal in table_rows(summary, latency_ms):
        lines.append(f"| {name} | {_fmt(base)} | {_fmt(cur)} | {_ratio(base, cur)} | {goal} |")
    return "\n".join(lines)


# --- Main ------------------------------------------------------------------------------------


def webhook_rows(
    trees: list[servers.Tree], *, events: int | None, logs: Path, say: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    try:
        from devtools.bench_webhooks import run as webhooks_run  # the hook helper's module
    except ImportError:
        say("webhooks: devtools/bench_webhooks.py is not in this tree: the webhook rows are n/a")
        return {}
    rows = {}
    os.environ["BENCH_LOG_DIR"] = str(logs)  # where bench_webhooks writes its gunicorn and worker logs
    for tree in trees:
        say(f"webhooks: {tree.label}")
        servers.flush_redis(tree.redis_url)
        sizes = {"events": events, "warmup": max(events // 10, 10)} if events else {}
        try:
            rows[tree.label] = webhooks_run(
                app_root=tree.root, database_url=tree.database_url, redis_url=tree.redis_url, **sizes
            )
        except Exception as exc:  # noqa: BLE001 - the baseline may not support it; report, go on
            say(f"webhooks: {tree.label} failed: {type(exc).__name__}: {exc}")
        servers.flush_redis(tree.redis_url)
    return rows


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--baseline", default=None, help=f"git ref, or 'none' (default {DEFAULT_BASELINE}; --quick: none)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="default 2 (--quick: 1)")
    parser.add_argument("--checkouts", type=int, default=None, help="per client level and round (default 40)")
    parser.add_argument("--requests", type=int, default=None, help="per cart/ceiling run (default 1000)")
    parser.add_argument("--concurrency", type=int, default=8, help="clients of the cart and ceiling runs")
    parser.add_argument("--hot-stock", type=int, default=None, help="default 100 (--quick: 10)")
    parser.add_argument("--hot-buyers", type=int, default=None, help="default 300 (--quick: 30)")
    parser.add_argument("--hot-rounds", type=int, default=None, help="rounds that run the hot SKU race (default all)")
    parser.add_argument("--webhook-events", type=int, default=None, help="default bench_webhooks' own (--quick: 300)")
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--redis-urls", default=DEFAULT_REDIS, help="current tree's, baseline's")
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--profile-out", type=Path, default=None, help="cProfile of the current tree's SQL checkout")
    parser.add_argument("--reuse-db", action="store_true", help="keep the databases when they exist (faster)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round, few checkouts, no baseline")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "baseline": "none" if quick else DEFAULT_BASELINE,
        "rounds": 1 if quick else 2,
        "checkouts": 4 if quick else 40,
        "requests": 200 if quick else 1000,
        "hot_stock": 10 if quick else 100,
        "hot_buyers": 30 if quick else 300,
        "webhook_events": 300 if quick else None,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must be a PostgreSQL URL")
    if len(args.redis_urls.split(",")) != 2:
        parser.error("--redis-urls takes two URLs: the current tree's and the baseline's")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    name = urlparse(args.database_url).path.lstrip("/")
    redis_current, redis_base = args.redis_urls.split(",")
    head = servers.git("rev-parse", "--short", "HEAD")
    dirty = " + uncommitted changes" if servers.git("status", "--porcelain", "--untracked-files=no") else ""
    trees = [servers.Tree("current", servers.ROOT, head + dirty, args.database_url, redis_current)]
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    stand_in_processes = []
    started = time.monotonic()
    print(f"logs in {logs}; load average {os.getloadavg()}", flush=True)
    try:
        if args.baseline != "none":
            base_root = servers.add_worktree(args.baseline)
            base_ref = servers.git("rev-parse", "--short", "HEAD", cwd=base_root)
            base_url = servers.with_db_name(args.database_url, f"{name}_base")
            trees.insert(0, servers.Tree("baseline", base_root, base_ref, base_url, redis_base, temporary=True))
        stand_ins = {}
        for mode, latency in (("instant", 0), ("latency", args.latency_ms)):
            process, url = start_localstripe(log_file=logs / f"standin-{mode}.log", latency_ms=latency, persist=False)
            stand_in_processes.append(process)
            stand_ins[mode] = url
        bench = Bench(args, trees, stand_ins, logs)
        sql = {}
        for tree in trees:
            bench.say(f"preparing {tree.label} ({tree.ref}) in {tree.root}: database {tree.database_url}")
            servers.prepare(tree, stripe_base=stand_ins["instant"], reuse=args.reuse_db)
            profile = args.profile_out if tree.label == "current" else None
            sql[tree.label] = sql_counts(tree, stripe_base=stand_ins["instant"], profile=profile)
            bench.say(f"  SQL {tree.label}: {sql[tree.label]}")
        bench.rounds()
        webhooks = webhook_rows(trees, events=args.webhook_events, logs=logs, say=bench.say)
        summary = summarize(bench, sql, webhooks)
    finally:
        for process in stand_in_processes:
            stop(process)
        for tree in trees:
            servers.flush_redis(tree.redis_url)
            if tree.temporary:
                servers.remove_worktree(tree.root)
    summary["meta"] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "seconds": round(time.monotonic() - started, 1),
        "load_average_end": os.getloadavg(),
        "nproc": os.cpu_count(),
        "checkout_details": {
            f"{tree}/{mode}/{clients}": [r.summary() for r in runs]
            for (tree, mode, clients), runs in bench.checkouts.items()
        },
    }
    print("\n" + render(summary, args.latency_ms))
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps({k: v for k, v in summary.items() if k != "meta"}, default=str))
    failures = sum(r.failed for runs in bench.checkouts.values() for r in runs)
    oversold = sum(row["hot_oversold"] for key, row in summary.items() if key in ("current", "baseline"))
    return 1 if failures or oversold else 0


if __name__ == "__main__":
    sys.exit(main())
