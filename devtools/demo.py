"""The one-command demo (README command 1). Dev tooling: never imported by product code.

Refuses a busy port before starting anything, then, printing each phase with its duration:
starts localstripe on 127.0.0.1, migrates, loads the demo catalog, creates a staff user,
registers the Stripe webhook with localstripe, starts a Celery worker when Redis answers
(tasks run eagerly otherwise), serves the site on 127.0.0.1, waits for ``/health/ready``,
loads the demo shoppers and a few weeks of past orders through the store API and the staff
services (``devtools.demo_history``, first run only) and only then prints the banner.
Ctrl-C stops everything it started.

Without ``DATABASE_URL`` the demo keeps its data in ``var/demo.sqlite3`` and creates
dj-stripe's tables from its models (``DEMO_DJSTRIPE_SYNCDB``, see config/settings.py)
instead of running dj-stripe's migrations (about 40 s of CPU for 514 RemoveField
operations). That database is the demo's own: when the installed dj-stripe version changes
it is recreated (with localstripe's store), since syncdb never alters an existing table.
With ``DATABASE_URL`` set (PostgreSQL) everything migrates as in production.
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from devtools.demo_history import SHOPPERS
from devtools.localstripe_server import start_localstripe, stop

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def _shopper_password() -> str:
    """The demo shoppers' password: DEMO_SHOPPER_PASSWORD, or made once and kept in var/ (never in code)."""
    if os.environ.get("DEMO_SHOPPER_PASSWORD"):
        return os.environ["DEMO_SHOPPER_PASSWORD"]
    kept = ROOT / "var" / "demo-shopper-password"
    if not kept.exists():
        kept.write_text(secrets.token_urlsafe(9) + "\n")
        kept.chmod(0o600)
    return kept.read_text().strip()


def _redis_answers(url: str) -> bool:
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no broker", eager mode
        return False


def _manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)  # noqa: S603


def _call_commands(*commands: list[str], env: dict[str, str]) -> None:
    """Several management commands in one interpreter (each start of Django costs seconds here)."""
    code = (
        "import json, sys, django; django.setup(); from django.core.management import call_command\n"
        "for command in json.loads(sys.argv[1]): call_command(*command)"
    )
    subprocess.run([PYTHON, "-c", code, json.dumps(commands)], cwd=ROOT, env=env, check=True)  # noqa: S603


class Quiet:
    """Holds back a child's output (request and task logs) until the banner is out, then passes it on.

    What was held back is dropped, except the last lines, which are shown if startup fails.
    """

    def __init__(self) -> None:
        self.open = threading.Event()
        self.tail: collections.deque[str] = collections.deque(maxlen=40)

    def popen(self, command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
        child = subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        threading.Thread(target=self._forward, args=(child,), daemon=True).start()
        return child

    def _forward(self, child: subprocess.Popen[str]) -> None:
        assert child.stdout is not None
        for line in child.stdout:
            if self.open.is_set():
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                self.tail.append(line)

    def show_tail(self) -> None:
        sys.stdout.writelines(self.tail)
        self.tail.clear()


def _port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class Phases:
    """Prints ``[n/N] what...`` when a phase starts and its duration when it ends."""

    def __init__(self, total: int) -> None:
        self.total, self.number, self.started = total, 0, time.monotonic()
        self.phase_started = self.started

    def start(self, what: str) -> None:
        self.number += 1
        self.phase_started = time.monotonic()
        print(f"[{self.number}/{self.total}] {what}...", flush=True)

    def done(self, detail: str = "") -> None:
        took = time.monotonic() - self.phase_started
        print(f"      done in {took:.1f} s{'  ' + detail if detail else ''}", flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def _wait_ready(site: str, children: list[subprocess.Popen[str]], timeout: float = 60.0) -> None:
    """Until ``/health/ready`` answers 200 (database and broker reachable)."""
    deadline = time.monotonic() + timeout
    while True:
        if any(child.poll() is not None for child in children):
            raise SystemExit("The web server or the worker exited during startup; see the output above.")
        try:
            with urllib.request.urlopen(f"{site}/health/ready", timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{site}/health/ready did not answer 200 within {timeout:.0f} s.")
        time.sleep(0.2)


def _demo_sqlite(env: dict[str, str]) -> None:
    """The demo's own SQLite file, recreated when dj-stripe's version changes (see the docstring)."""
    database = ROOT / "var" / "demo.sqlite3"
    stamp = ROOT / "var" / "demo.djstripe-version"
    version = importlib.metadata.version("dj-stripe")
    if database.exists() and (not stamp.exists() or stamp.read_text().strip() != version):
        print(f"dj-stripe is now {version}: recreating the demo database {database.name}", flush=True)
        database.unlink()
        (ROOT / "var" / "localstripe.pickle").unlink(missing_ok=True)
    stamp.write_text(version + "\n")
    env["DATABASE_URL"] = f"sqlite:///{database}"
    env["DEMO_DJSTRIPE_SYNCDB"] = "true"


def _register_webhook(stripe_base: str, url: str, secret: str) -> None:
    body = urllib.parse.urlencode({"url": url, "secret": secret}).encode()
    request = urllib.request.Request(f"{stripe_base}/_config/webhooks/demo", data=body, method="POST")
    request.add_header("Authorization", "Bearer sk_test_localstripe000000000000000000")
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback only
        response.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8000")))
    parser.add_argument("--stripe-port", type=int, default=int(os.environ.get("DEMO_STRIPE_PORT", "8420")))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/1"))
    args = parser.parse_args()

    for port, what in ((args.port, "--port / DEMO_PORT"), (args.stripe_port, "--stripe-port / DEMO_STRIPE_PORT")):
        if _port_busy(port):
            raise SystemExit(
                f"Port {port} on 127.0.0.1 is in use (another demo or server?). Stop it, or choose another "
                f"port with {what}. Nothing was started."
            )
    (ROOT / "var").mkdir(exist_ok=True)
    children: list[subprocess.Popen[str]] = []
    quiet = Quiet()
    phases = Phases(total=5)
    phases.start("Starting localstripe (the Stripe stand-in)")
    stripe_process, stripe_base = start_localstripe(
        args.stripe_port, ROOT / "var" / "localstripe.pickle", from_scratch=False
    )
    phases.done(stripe_base)
    site = f"http://127.0.0.1:{args.port}"
    webhook_secret = os.environ.get("STRIPE_WEBHOOK_SECRET") or "whsec_demo_" + secrets.token_hex(16)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "true",
        "STRIPE_API_KEY": os.environ.get("STRIPE_API_KEY", "sk_test_localstripe000000000000000000"),
        "STRIPE_PUBLISHABLE_KEY": os.environ.get("STRIPE_PUBLISHABLE_KEY", "pk_test_localstripe_dev"),
        "STRIPE_API_BASE": stripe_base,
        "STRIPE_JS_URL": f"{stripe_base}/js.stripe.com/v3/",
        "STRIPE_WEBHOOK_SECRET": webhook_secret,
        # localstripe rejects these real-Stripe parameters (docs/localstripe.md).
        "STRIPE_AUTOMATIC_PAYMENT_METHODS": "false",
        "STRIPE_SEND_SETUP_FUTURE_USAGE": "false",
        # demo_history opens ~35 carts from 127.0.0.1 in well under a minute (production: 30/min per IP).
        "THROTTLE_CART_CREATE": os.environ.get("THROTTLE_CART_CREATE", "600/min"),
    }
    if not os.environ.get("DATABASE_URL"):
        _demo_sqlite(env)
    if not os.environ.get("DJANGO_EMAIL_BACKEND"):  # the shop's emails as files, not in the console
        env["DJANGO_EMAIL_BACKEND"] = "django.core.mail.backends.filebased.EmailBackend"
        env.setdefault("DJANGO_EMAIL_FILE_PATH", str(ROOT / "var" / "emails"))
    shopper_password = _shopper_password()
    use_worker = _redis_answers(args.redis_url)
    if use_worker:
        env["REDIS_URL"] = args.redis_url
    else:
        env.pop("REDIS_URL", None)
        env["CELERY_TASK_ALWAYS_EAGER"] = "true"

    def shutdown(*_: object) -> None:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        stop(stripe_process)

    # Ctrl-C and `kill` both stop everything (SIGINT may arrive ignored when started from a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        phases.start("Migrating the database")
        migrate = ["migrate", "--noinput", "-v", "0"]
        _manage(*migrate, *(["--run-syncdb"] if env.get("DEMO_DJSTRIPE_SYNCDB") else []), env=env)
        phases.done(env.get("DATABASE_URL", "").split("@")[-1])
        phases.start("Loading the demo catalog and the staff user")
        staff_password = os.environ.get("DEMO_STAFF_PASSWORD") or secrets.token_urlsafe(12)
        _call_commands(
            ["load_demo_catalog"],
            ["ensure_staff_user", "--email", "staff@example.com", "--password", staff_password],
            env=env,
        )
        _register_webhook(stripe_base, f"{site}/webhooks/stripe", webhook_secret)
        phases.done()
        phases.start("Starting the web server" + (" and the Celery worker" if use_worker else ""))
        # Web and worker write their metrics to one directory, summed by GET /metrics; emptied per run.
        metrics_dir = ROOT / "var" / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir()
        env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        if use_worker:
            children.append(
                quiet.popen(
                    [
                        PYTHON,
                        "-m",
                        "celery",
                        "-A",
                        "config",
                        "worker",
                        "-B",
                        "-s",
                        "var/celerybeat-schedule",
                        "--loglevel=WARNING",
                        "--concurrency=2",
                    ],
                    env,
                )
            )
        children.append(quiet.popen([PYTHON, "manage.py", "runserver", f"127.0.0.1:{args.port}", "--noreload"], env))
        _wait_ready(site, children)
        phases.done(f"{site}/health/ready answers")
        phases.start("Loading demo shoppers and past orders (first run only)")
        subprocess.run(  # noqa: S603
            [
                PYTHON,
                "-m",
                "devtools.demo_history",
                "--base-url",
                site,
                "--stripe-base",
                stripe_base,
                "--publishable-key",
                env["STRIPE_PUBLISHABLE_KEY"],
                "--password",
                shopper_password,
            ],
            cwd=ROOT,
            env={**env, "LOG_LEVEL": "WARNING"},  # its progress line, not every service's log line
            check=True,
        )
        phases.done()
        print(
            "\n"
            "================ checkout demo ================\n"
            f"  storefront   {site}/\n"
            f"  admin        {site}/admin/   login staff@example.com / {staff_password}\n"
            f"  shoppers     sign in at {site}/account as {SHOPPERS[0][0]} (or {len(SHOPPERS) - 1} more) / {shopper_password}\n"
            f"  emails       {env.get('DJANGO_EMAIL_FILE_PATH', 'DJANGO_EMAIL_BACKEND')}\n"
            f"  API docs     {site}/store/docs\n"
            f"  OpenAPI      {site}/store/openapi.json\n"
            f"  localstripe  {stripe_base}  (webhooks -> {site}/webhooks/stripe)\n"
            f"  celery       {'worker + beat on ' + args.redis_url if use_worker else 'eager (no Redis answered)'}\n"
            "  test cards   4242 4242 4242 4242 ok, 4000 0000 0000 0341 declined, 4000 0027 6000 3184 3-D Secure\n"
            f"  flow script  .venv/bin/python -m devtools.checkout_flow --base-url {site}\n"
            f"  ready in     {phases.elapsed():.0f} s\n"
            "  Ctrl-C stops everything.\n"
            "===============================================\n"
            "(request and task logs follow)\n",
            flush=True,
        )
        quiet.open.set()
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except (subprocess.CalledProcessError, SystemExit):
        quiet.show_tail()
        raise
    finally:
        shutdown()


if __name__ == "__main__":
    main()
