"""``python -m devtools.bench --quick``: one end-to-end smoke run of the benchmark.

It starts the app under production-mode gunicorn, the Stripe stand-in (instant and slow) and
the ceiling app as subprocesses, on databases of its own (``<test database>_benchq``) and
Redis DBs 13 and 14 of the test Redis, and must print a table with every row, place exactly
the hot SKU's stock, and oversell nothing. No timing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
STEPS = [
    "create cart",
    "add line",
    "shipping address",
    "billing address",
    "shipping method",
    "payment session",
    "complete",
]
ROWS = (
    [f"checkouts/s, {n} clients, instant stand-in" for n in (1, 4, 8, 16)]
    + [f"checkouts/s, {n} clients, stand-in 150 ms/call" for n in (1, 4, 8, 16)]
    + [f"{step}: {p} ms (8 clients)" for step in STEPS for p in ("p50", "p95")]
    + [f"SQL: {step}" for step in STEPS]
    + [
        "SQL: whole checkout (7 steps, idempotency records incl.)",
        "SQL: cart GET",
        "SQL: cart write (add line)",
        "CPU-s per checkout (gunicorn master + workers)",
        "cart GET req/s",
        "ceiling GET req/s (measured next to it)",
        "cart GET, % of ceiling GET",
        "cart write req/s",
        "ceiling POST req/s (measured next to it)",
        "cart write, % of ceiling POST",
        "hot SKU orders/s",
        "hot SKU orders placed (all rounds)",
        "hot SKU oversold",
    ]
)
WEBHOOK_ROWS = ["webhook acks/s", "webhook ack p99 ms", "worker events/s", "worker lag p99 s"]


def _urls() -> tuple[str, str]:
    database = urlparse(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/checkout"))
    redis = urlparse(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    db_url = database._replace(path=f"/{database.path.lstrip('/') or 'checkout'}_benchq").geturl()
    return db_url, ",".join(redis._replace(path=f"/{n}").geturl() for n in (13, 14))


def test_bench_quick_prints_every_row_and_oversells_nothing(tmp_path):
    db_url, redis_urls = _urls()
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "devtools.bench", "--quick", "--reuse-db"]
    command += ["--database-url", db_url, "--redis-urls", redis_urls, "--json-out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False)  # noqa: S603
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    table = {
        cells[1].strip(): [c.strip() for c in cells[2:-1]]
        for line in done.stdout.splitlines()
        if line.startswith("| ") and len(cells := line.split("|")) > 5
    }
    webhooks_here = (ROOT / "devtools" / "bench_webhooks.py").exists()
    for row in ROWS + (WEBHOOK_ROWS if webhooks_here else []):
        assert row in table, (row, sorted(table))
        baseline, current, ratio, _goal = table[row]
        assert current != "n/a", (row, table[row])
        assert baseline == ratio == "n/a"  # --quick has no baseline

    summary = json.loads(out.read_text())
    current = summary["current"]
    assert current["hot_oversold"] == 0
    assert current["hot_orders"] == 10  # the quick run's stock: 30 buyers, 10 units, every unit sold once
    assert current["hot_runs"][0]["units_sold"] == 10
    assert current["sql"]["checkout"] == sum(current["sql"]["steps"].values())
    assert all(current[f"failed_{mode}_{n}"] == 0 for mode in ("instant", "latency") for n in (1, 4, 8, 16))
