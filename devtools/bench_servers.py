"""The benchmark's processes and data: app trees, their databases, gunicorn, the Stripe stand-in,
the ceiling app, CPU time from /proc. Dev tooling only.

Every process is bound to 127.0.0.1 and stopped by its PID (SIGTERM, SIGKILL after 15 s).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
HOT_SKU = "BENCH-HOT"
SWATCHES = 5
THROTTLE_RATE = "1000000/min"  # every buyer comes from 127.0.0.1: the per-IP limits would measure themselves

# Idempotent, run by the tree's own manage.py shell: swatch products (the added line, plenty of
# stock) and the hot SKU (its stock is reset before every hot-SKU run), priced in usd.
SEED = f"""
from catalog.models import Price, Product, StockLevel, Variant
skus = [f"BENCH-{{n:02d}}" for n in range(1, {SWATCHES} + 1)] + ["{HOT_SKU}"]
for sku in skus:
    product, _ = Product.objects.get_or_create(
        handle=sku.lower(), defaults={{"title": f"Bench {{sku}}", "description": "Benchmark data."}}
    )
    variant, _ = Variant.objects.get_or_create(sku=sku, defaults={{"product": product, "title": "Swatch"}})
    StockLevel.objects.update_or_create(variant=variant, defaults={{"on_hand": 10**9}})
    Price.objects.update_or_create(variant=variant, currency_code="usd", defaults={{"amount": 300}})
"""


@dataclass
class Tree:
    """One version of the app: its source tree, its database and its Redis DB."""

    label: str  # "baseline" or "current"
    root: Path
    ref: str
    database_url: str
    redis_url: str
    temporary: bool = False


def git(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S607
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def add_worktree(ref: str) -> Path:
    """The baseline ref checked out (detached) in a temporary worktree."""
    path = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    path.rmdir()
    git("worktree", "add", "--detach", "--quiet", str(path), ref)
    return path


def remove_worktree(path: Path) -> None:
    try:
        git("worktree", "remove", "--force", str(path))
    except RuntimeError:
        subprocess.run(["rm", "-rf", str(path)], check=False)  # noqa: S607
        git("worktree", "prune")


def with_db_name(url: str, name: str) -> str:
    return urlparse(url)._replace(path=f"/{name}").geturl()


def base_env(tree: Tree, *, stripe_base: str) -> dict[str, str]:
    """Production mode (DJANGO_DEBUG=false) with the secrets production requires, set by the bench."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "STRIPE_", "CELERY_", "REDIS_", "THROTTLE_", "LOG_", "DATABASE_", "PYTHONPATH"))
    }
    env.update(
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SECURE_SSL_REDIRECT="false",
        DATABASE_URL=tree.database_url,
        REDIS_URL=tree.redis_url,
        STRIPE_API_KEY="sk_test_bench" + secrets.token_hex(12),
        STRIPE_PUBLISHABLE_KEY="pk_test_bench",
        STRIPE_WEBHOOK_SECRET="whsec_bench" + secrets.token_hex(12),
        STRIPE_API_BASE=stripe_base,
        METRICS_ENABLED="false",
        PYTHONDONTWRITEBYTECODE="1",
        **{
            f"THROTTLE_{name}": THROTTLE_RATE
            for name in ("PAYMENT_SESSION_CART", "PAYMENT_SESSION_IP", "AUTH", "AUTH_EMAIL", "CART_CREATE")
        },
    )
    return env


def run(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} (in {cwd}) failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def prepare(tree: Tree, *, stripe_base: str, reuse: bool = False) -> None:
    """Recreate the tree's database (``reuse``: keep it when it exists), migrate, load the demo
    catalog and the bench products; flush its Redis DB."""
    import psycopg
    import redis

    parsed = urlparse(tree.database_url)
    name = parsed.path.lstrip("/")
    with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and not reuse:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        if not exists or not reuse:
            conn.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(tree.redis_url).flushdb()
    env = base_env(tree, stripe_base=stripe_base)
    run([PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=tree.root, env=env)
    run([PYTHON, "manage.py", "load_demo_catalog"], cwd=tree.root, env=env)
    run([PYTHON, "manage.py", "shell", "-c", SEED], cwd=tree.root, env=env)


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def hot_sku_reset(database_url: str, stock: int) -> int:
    """Stock ``stock`` of the hot SKU, no reservation; returns the units already sold (order lines)."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT id FROM catalog_variant WHERE sku = %s", (HOT_SKU,)).fetchone()
        assert row, "the hot SKU is seeded"
        variant_id = row[0]
        with conn.transaction():
            conn.execute("DELETE FROM catalog_stockreservation WHERE variant_id = %s", (variant_id,))
            conn.execute(
                "UPDATE catalog_stocklevel SET on_hand = %s, reserved = 0 WHERE variant_id = %s", (stock, variant_id)
            )
    return hot_sku_sold(database_url)


def hot_sku_sold(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT COALESCE(SUM(l.quantity), 0) FROM orders_orderline l "
            "JOIN catalog_variant v ON v.id = l.variant_id WHERE v.sku = %s",
            (HOT_SKU,),
        ).fetchone()
    return int(row[0]) if row else 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gunicorn:
    """``gunicorn <app> -b 127.0.0.1:<free port> -w <workers>`` in ``cwd``, ready when ``ready_path``
    answers 200 (the tree's production config file when ``config``)."""

    def __init__(
        self, *, app: str, cwd: Path, env: dict[str, str], workers: int, log: Path, ready_path: str, config: bool
    ) -> None:
        self.port = free_port()
        self.log = log.open("ab")
        command = [GUNICORN, app, "-b", f"127.0.0.1:{self.port}", "-w", str(workers)]
        if config:
            command[1:1] = ["-c", "config/gunicorn.conf.py"]
        else:  # the ceiling: the worker model of the app's config/gunicorn.conf.py (gthread, 8 threads)
            command += ["--access-logfile", "-", "--worker-class", "gthread", "--threads", "8"]
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=self.log, stderr=self.log)  # noqa: S603
        self._wait_ready(ready_path)

    def _wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not become ready in {timeout:.0f} s; see {self.log.name}")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def app_server(tree: Tree, *, stripe_base: str, workers: int, log: Path) -> Gunicorn:
    return Gunicorn(
        app="config.wsgi",
        cwd=tree.root,
        env=base_env(tree, stripe_base=stripe_base),
        workers=workers,
        log=log,
        ready_path="/health/ready",
        config=(tree.root / "config" / "gunicorn.conf.py").exists(),
    )


def ceiling_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "PYTHONPATH"))}
    env.update(DJANGO_SECRET_KEY=secrets.token_urlsafe(50), DATABASE_URL=database_url, PYTHONDONTWRITEBYTECODE="1")
    env["DJANGO_SETTINGS_MODULE"] = "devtools.ceiling.settings"
    return env


def prepare_ceiling(database_url: str, items: int) -> list[int]:
    """Migrate the ceiling app into ``database_url``; returns the ids of ``items`` items (one per client)."""
    env = ceiling_env(database_url)
    run([PYTHON, "-m", "django", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env)
    code = (
        "from devtools.ceiling.models import Item\n"
        f"print(*[Item.objects.get_or_create(name=f'bench-{{n}}')[0].pk for n in range({items})])"
    )
    out = run([PYTHON, "-m", "django", "shell", "-c", code], cwd=ROOT, env=env)
    return [int(v) for v in out.strip().splitlines()[-1].split()]


def ceiling_server(database_url: str, *, workers: int, log: Path, item_id: int) -> Gunicorn:
    return Gunicorn(
        app="devtools.ceiling.wsgi",
        cwd=ROOT,
        env=ceiling_env(database_url),
        workers=workers,
        log=log,
        ready_path=f"/items/{item_id}",
        config=False,
    )


# --- CPU time (psutil is not installed: /proc) -------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(master: int) -> float:
    """utime + stime of ``master`` and its children (gunicorn's workers), in seconds."""
    pids = [master]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and int(fields[1]) == master:  # field 4, ppid
                pids.append(int(entry.name))
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15: utime, stime
    return total / CLOCK_TICKS
