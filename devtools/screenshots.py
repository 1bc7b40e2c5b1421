"""Headless Chromium screenshots of the staff back office, for reviewers (dev tooling, never imported by the product).

    python -m devtools.screenshots [--out artifacts/screenshots] [--generate] [--base-url URL --email E --password P]

Without ``--base-url`` it serves the project itself (``manage.py runserver`` on 127.0.0.1, a
free port, the database of ``DATABASE_URL``), creates a throwaway superuser
(``screenshots@example.com``) and stops the server afterwards. ``--generate`` first runs
``python -m devtools.demo_orders --seed 42`` (it adds orders: start from an empty database for
the same pictures) so there is something to look at.

It logs in through the admin login form with Playwright driving Debian's Chromium
(``/usr/bin/chromium``: ``apt-get install -y chromium``; no browser download) and writes
full-page PNGs:

* ``dashboard.png``: the analytics dashboard (after Chart.js has drawn);
* ``order.png``: an order that was captured, shipped and partly refunded (ledger, timeline);
* ``order-authorized.png``: an order awaiting capture, with its action buttons;
* ``capture-confirm.png``: the capture confirmation page;
* ``orders.png``: the order list; ``webhooks.png``: the webhook inbox's dead letters.

``capture(...)`` is reusable from tests (``tests/admin/test_screenshots.py``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devtools.chromium import CHROMIUM, chromium_launch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "artifacts" / "screenshots"
SCREENSHOT_EMAIL = "screenshots@example.com"


@dataclass(frozen=True)
class Shot:
    name: str
    path: str  # URL path on the server
    wait_for: str = "#content-main"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback only
                return
        except urllib.error.HTTPError:
            return  # answering (a redirect to login or a 404 is fine)
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def pages_to_shoot() -> list[Shot]:
    """Picks the orders worth showing from the database (needs Django set up)."""
    from orders.models import FulfillmentStatus, Order, PaymentStatus

    shots = [
        Shot("dashboard", "/admin/orders/order/dashboard/", "html[data-charts-ready]"),
        Shot("orders", "/admin/orders/order/"),
    ]
    rich = (
        Order.objects.filter(
            payment_status=PaymentStatus.PARTIALLY_REFUNDED,
            fulfillment_status__in=[FulfillmentStatus.SHIPPED, FulfillmentStatus.DELIVERED],
        ).first()
        or Order.objects.filter(payment_status__in=[PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED]).first()
        or Order.objects.first()
    )
    if rich is not None:
        shots.append(Shot("order", f"/admin/orders/order/{rich.pk}/change/", "#ck-timeline"))
    waiting = Order.objects.filter(payment_status=PaymentStatus.AUTHORIZED).order_by("capture_before").first()
    if waiting is not None:
        shots.append(Shot("order-authorized", f"/admin/orders/order/{waiting.pk}/change/", "#ck-timeline"))
        shots.append(Shot("capture-confirm", f"/admin/orders/order/{waiting.pk}/capture/", "#ck-action-form"))
    shots.append(Shot("webhooks", "/admin/webhooks/webhookevent/?inbox=dead"))
    return shots


def capture(*, base_url: str, email: str, password: str, shots: list[Shot], out_dir: Path) -> list[Path]:
    """Log in and write one full-page PNG per shot; returns the files. Raises on a JavaScript error."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise RuntimeError("Chromium is missing: apt-get install -y chromium")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = chromium_launch(playwright)
        try:
            context = browser.new_context(
                viewport={"width": 1440, "height": 1000}, base_url=base_url, device_scale_factor=1
            )
            context.set_default_timeout(20_000)
            # The admin's navigation sidebar collapsed: the pages get the whole width.
            context.add_init_script("window.localStorage.setItem('django.admin.navSidebarIsOpen', 'false');")
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto("/admin/login/?next=/admin/")
            page.fill("#id_username", email)
            page.fill("#id_password", password)
            page.click("input[type=submit]")
            page.wait_for_url("**/admin/")
            for shot in shots:
                response = page.goto(shot.path)
                if response is None or response.status != 200:
                    raise RuntimeError(f"{shot.path} answered {response.status if response else 'nothing'}")
                page.wait_for_selector(shot.wait_for, state="attached")
                path = out_dir / f"{shot.name}.png"
                page.screenshot(path=str(path), full_page=True)
                written.append(path)
            context.close()
        finally:
            browser.close()
    if errors:
        raise RuntimeError(f"JavaScript errors: {errors}")
    return written


def _setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop runs in this thread
    import django

    django.setup()


def _staff_user() -> str:
    from customers.models import User

    password = secrets.token_urlsafe(16)
    user = User.objects.filter(email=SCREENSHOT_EMAIL).first() or User(email=SCREENSHOT_EMAIL)
    user.is_staff = user.is_superuser = user.is_active = True
    user.set_password(password)
    user.save()
    return password


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--generate", action="store_true", help="python -m devtools.demo_orders --seed 42 first")
    parser.add_argument("--base-url", help="an already running server (then --email and --password)")
    parser.add_argument("--email", default=SCREENSHOT_EMAIL)
    parser.add_argument("--password")
    args = parser.parse_args()

    if args.generate:  # its own process: it points the gateway at its own Stripe stand-in
        subprocess.run([sys.executable, "-m", "devtools.demo_orders", "--seed", "42"], cwd=ROOT, check=True)  # noqa: S603
    _setup_django()
    shots = pages_to_shoot()
    server: subprocess.Popen[bytes] | None = None
    base_url, password = args.base_url, args.password
    try:
        if base_url is None:
            password = _staff_user()
            port = _free_port()
            base_url = f"http://127.0.0.1:{port}"
            env = {**os.environ, "DJANGO_DEBUG": "true"}  # runserver serves the static files
            server = subprocess.Popen(  # noqa: S603 - our own manage.py
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            _wait_http(f"{base_url}/admin/login/")
        if not password:
            parser.error("--password is required with --base-url")
        for path in capture(base_url=base_url, email=args.email, password=password, shots=shots, out_dir=args.out):
            print(path)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
