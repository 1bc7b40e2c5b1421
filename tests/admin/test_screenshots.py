"""Headless Chromium screenshots of the order page and the dashboard (devtools.screenshots), for reviewers.

Writes ``artifacts/screenshots/*.png`` (gitignored). Skipped when Debian's Chromium is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devtools import demo_orders
from devtools.chromium import CHROMIUM
from devtools.screenshots import capture, pages_to_shoot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_screenshots_of_the_order_page_and_the_dashboard(
    live_server: Any, monkeypatch: pytest.MonkeyPatch, django_user_model: Any, localstripe: Any, settings: Any
):
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed: apt-get install -y chromium")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop runs in this thread
    settings.STRIPE_WEBHOOK_SECRET = "whsec_test_screenshots"
    settings.STRIPE_CAPTURE_METHOD = "manual"
    demo_orders.demo_orders_generate(stripe_base=localstripe.base_url, orders=16, seed=5, customers=2)
    django_user_model.objects.create_superuser("shots@example.com", "correct-horse-battery")
    out = Path(settings.BASE_DIR) / "artifacts" / "screenshots"

    files = capture(
        base_url=live_server.url,
        email="shots@example.com",
        password="correct-horse-battery",
        shots=pages_to_shoot(),
        out_dir=out,
    )

    assert {path.stem for path in files} >= {
        "dashboard",
        "order",
        "order-authorized",
        "capture-confirm",
        "orders",
        "webhooks",
    }
    for path in files:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, path
