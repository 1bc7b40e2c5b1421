"""Headless Chromium against a live server and a real localstripe process.

The live server (pytest-django's ``live_server``, a thread of this process) reads the same
settings object as the test, so the ``localstripe`` fixture's settings reach it; the page
loads localstripe's fake Stripe.js from ``STRIPE_JS_URL``. The demo catalog
(``load_demo_catalog``) is the shop. Screenshots of each test's steps, and of the page at
a failure, are written to ``artifacts/browser/`` (kept by CI as test artifacts).

Chromium comes from Debian (``apt-get install chromium chromium-driver``; ``.ci/run``
installs it); Playwright drives it through ``executable_path``: no browser download.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from devtools.chromium import CHROMIUM, chromium_launch
from tests.helpers import demo_shop_configure
from tests.plugins.localstripe import LocalStripe, localstripe, localstripe_server  # noqa: F401 - fixtures

ARTIFACTS = Path(django_settings.BASE_DIR) / "artifacts" / "browser"
TIMEOUT_MS = 20_000


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def shop_server(live_server: Any, localstripe: LocalStripe, settings: Any) -> Any:  # noqa: F811
    """The live server, configured like the demo: localstripe, its fake Stripe.js, the demo catalog."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    demo_shop_configure(settings, localstripe, publishable_key="pk_test_localstripe_browser")
    return live_server


class Screenshots:
    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        self.count = 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for old in ARTIFACTS.glob(f"{self.name}-*.png"):
            old.unlink()

    def __call__(self, step: str, *, of: Any = None) -> Path:
        """Save a full-page screenshot of this test's page (or of another page ``of``)."""
        self.count += 1
        path = ARTIFACTS / f"{self.name}-{self.count:02d}-{step}.png"
        (of or self.page).screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def chromium(shop_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A headless Chromium for one test, started after the database and the live server.

    Playwright's sync API keeps its asyncio loop running in this thread, and Django then
    refuses ORM calls here (``SynchronousOnlyOperation``). The test's ORM calls are plain
    synchronous code, not coroutines, so the check is a false positive: it is switched
    off for the browser test only, while its Playwright runs.
    """
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed: apt-get install -y chromium chromium-driver (.ci/run does this)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = chromium_launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any, shop_server: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, base_url=shop_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.screenshots = Screenshots(page, request.node.name)
    try:
        yield page
    finally:
        call_report = getattr(request.node, "rep_call", None)
        if call_report is not None and call_report.failed:
            page.screenshots("failed")
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


class StorefrontPage:
    """The shopper's moves on the storefront page, by label and role as a person sees them."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.shot = page.screenshots

    def idle(self) -> None:
        self.page.wait_for_selector("body[data-ready=true]:not([data-busy=true])")

    def open(self, region: str = "United States (USD)") -> None:
        self.page.goto("/")
        self.idle()
        self.page.get_by_label("Region").select_option(label=region)
        self.idle()

    def add(self, product: str, quantity: int = 1) -> None:
        self.page.get_by_label(f"{product} quantity").fill(str(quantity))
        self.page.get_by_role("button", name=f"Add {product} to cart").click()
        self.idle()

    def set_quantity(self, line_title: str, quantity: int) -> None:
        field = self.page.get_by_label(f"Quantity of {line_title}")
        field.fill(str(quantity))
        field.dispatch_event("change")
        self.idle()

    def fill_address(self, *, email: str = "ada@example.com", postal_code: str = "12345") -> None:
        form = self.page.locator("#address-form")
        form.get_by_label("Email").fill(email)
        form.get_by_label("First name").first.fill("Ada")
        form.get_by_label("Last name").first.fill("Lovelace")
        form.get_by_label("Address", exact=True).first.fill("1 Loom Street")
        form.get_by_label("City").first.fill("Springfield")
        form.get_by_label("Postal code").first.fill(postal_code)
        self.page.get_by_role("button", name="Save address").click()
        self.idle()

    def choose_shipping(self, name: str = "Standard") -> None:
        self.page.locator("#shipping-options").get_by_label(name).check()
        self.idle()

    def fill_card(self, number: str) -> None:
        card = self.page.locator("#card-element")
        card.locator("input[placeholder=number]").fill(number)
        card.locator("input[placeholder=exp_month]").fill("12")
        card.locator("input[placeholder=exp_year]").fill("34")
        card.locator("input[placeholder=cvc]").fill("123")
        card.locator("input[placeholder=postal_code]").fill("12345")

    def pay(self) -> None:
        self.page.locator("#pay-button").click()

    def message(self) -> str:
        box = self.page.locator("#message")
        return box.inner_text() if box.is_visible() else ""

    def wait_for_error(self) -> str:
        self.page.wait_for_selector("#message[data-kind=error]")
        self.idle()
        return self.page.locator("#message").inner_text()

    def wait_for_order_page(self) -> dict[str, str]:
        self.page.wait_for_url("**/orders/order_*")
        self.idle()
        self.page.wait_for_selector("#order-details:not([hidden])")
        return {
            "url": self.page.url,
            "display_id": self.page.locator("#order-display-id").inner_text(),
            "payment_status": self.page.locator("#order-payment-status").get_attribute("data-status") or "",
            "payment_text": self.page.locator("#order-payment-status").inner_text(),
            "total": self.page.locator("#order-totals dd[data-total=total]").inner_text(),
        }


@pytest.fixture
def storefront(page: Any) -> StorefrontPage:
    return StorefrontPage(page)
