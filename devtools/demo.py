"""The one-command demo (README command 1). Dev tooling: never imported by product code.

Starts localstripe on 127.0.0.1, migrates, loads the demo catalog, creates a staff user,
registers the Stripe webhook with localstripe, starts a Celery worker when Redis answers
(tasks run eagerly otherwise) and serves the site on 127.0.0.1. Ctrl-C stops everything
it started.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from devtools.localstripe_server import start_localstripe, stop

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def _redis_answers(url: str) -> bool:
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no broker", eager mode
        return False


def _manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)  # noqa: S603


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

    (ROOT / "var").mkdir(exist_ok=True)
    children: list[subprocess.Popen[str]] = []
    stripe_process, stripe_base = start_localstripe(
        args.stripe_port, ROOT / "var" / "localstripe.pickle", from_scratch=False
    )
    site = f"http://127.0.0.1:{args.port}"
    webhook_secret = os.environ.get("STRIPE_WEBHOOK_SECRET") or "whsec_demo_" + secrets.token_hex(16)
    env = {
        **os.environ,
        "DJANGO_DEBUG": "true",
        "STRIPE_API_KEY": os.environ.get("STRIPE_API_KEY", "sk_test_localstripe000000000000000000"),
        "STRIPE_PUBLISHABLE_KEY": os.environ.get("STRIPE_PUBLISHABLE_KEY", "pk_test_localstripe_dev"),
        "STRIPE_API_BASE": stripe_base,
        "STRIPE_JS_URL": f"{stripe_base}/js.stripe.com/v3/",
        "STRIPE_WEBHOOK_SECRET": webhook_secret,
        # localstripe rejects these real-Stripe parameters (docs/localstripe.md).
        "STRIPE_AUTOMATIC_PAYMENT_METHODS": "false",
        "STRIPE_SEND_SETUP_FUTURE_USAGE": "false",
    }
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
        print("Preparing the database (the first run takes two or three minutes)...", flush=True)
        _manage("migrate", "--noinput", "-v", "0", env=env)
        _manage("load_demo_catalog", env=env)
        staff_password = os.environ.get("DEMO_STAFF_PASSWORD") or secrets.token_urlsafe(12)
        _manage("ensure_staff_user", "--email", "staff@example.com", "--password", staff_password, env=env)
        _register_webhook(stripe_base, f"{site}/webhooks/stripe", webhook_secret)
        if use_worker:
            children.append(
                subprocess.Popen(  # noqa: S603
                    [PYTHON, "-m", "celery", "-A", "config", "worker", "-B", "-s", "var/celerybeat-schedule", "--loglevel=INFO", "--concurrency=2"],
                    cwd=ROOT,
                    env=env,
                )
            )
        children.append(
            subprocess.Popen(  # noqa: S603
                [PYTHON, "manage.py", "runserver", f"127.0.0.1:{args.port}", "--noreload"], cwd=ROOT, env=env
            )
        )
        time.sleep(1.5)
        print(
            "\n"
            "================ checkout demo ================\n"
            f"  storefront   {site}/\n"
            f"  admin        {site}/admin/   login staff@example.com / {staff_password}\n"
            f"  API docs     {site}/store/docs\n"
            f"  OpenAPI      {site}/store/openapi.json\n"
            f"  localstripe  {stripe_base}  (webhooks -> {site}/webhooks/stripe)\n"
            f"  celery       {'worker + beat on ' + args.redis_url if use_worker else 'eager (no Redis answered)'}\n"
            "  test cards   4242 4242 4242 4242 ok, 4000 0000 0000 0341 declined, 4000 0027 6000 3184 3-D Secure\n"
            f"  flow script  .venv/bin/python manage.py checkout_flow --base-url {site}\n"
            "  Ctrl-C stops everything.\n"
            "===============================================\n",
            flush=True,
        )
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        shutdown()


if __name__ == "__main__":
    main()
