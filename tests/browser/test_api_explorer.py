"""The API explorer at /store/docs (Swagger UI from drf-spectacular-sidecar) in headless Chromium:
it loads nothing from outside this server, and "Try it out" -> "Execute" calls the running API,
anonymously and with a customer's bearer token entered through "Authorize" (issue 11 item 8)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from customers import services as customer_services
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@pytest.fixture
def outside_requests(page):
    """Every request the page makes to a host other than this machine's, aborted and recorded."""
    seen: list[str] = []

    def route(route):
        url = route.request.url
        if urlsplit(url).hostname not in LOCAL_HOSTS:
            seen.append(url)
            route.abort()
        else:
            route.continue_()

    page.context.route("**/*", route)
    page.on(
        "request",
        lambda request: seen.append(request.url)
        if urlsplit(request.url).scheme in ("http", "https") and urlsplit(request.url).hostname not in LOCAL_HOSTS
        else None,
    )
    return seen


def _open_operation(page, tag: str, operation_id: str):
    block = page.locator(f"#operations-{tag}-{operation_id}")
    block.locator(".opblock-summary").first.click()
    block.locator("button.try-out__btn").click()
    return block


def _execute(block) -> tuple[str, dict]:
    block.locator("button.execute").click()
    status = block.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    body = block.locator(".live-responses-table .response-col_description pre").first.inner_text()
    return status.inner_text().strip(), json.loads(body)


def test_api_explorer_tries_get_regions_without_leaving_this_server(page, outside_requests):
    page.goto("/store/docs")
    page.wait_for_selector("#operations-catalog-regions_list")
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("Checkout & payments store API")
    page.screenshots("loaded")

    block = _open_operation(page, "catalog", "regions_list")
    assert "List regions" in block.locator(".opblock-summary").first.inner_text()
    status, body = _execute(block)
    assert status == "200"
    assert {region["name"] for region in body["regions"]} >= {"United States", "Japan"}
    assert all(region["id"].startswith("reg_") for region in body["regions"])
    block.scroll_into_view_if_needed()
    page.screenshots("regions-executed")

    # The documented example is on the page too, as the "Example Value" of the 200 response.
    assert "reg_01m8v8trdwtdb47ec74sdcrj8y" in block.locator("tr.response[data-code='200']").inner_text()
    assert not outside_requests, outside_requests


def test_api_explorer_authorize_with_a_customer_token(page, outside_requests):
    user = UserFactory(email="explorer@example.com")
    token = customer_services.token_issue(email=user.email, password="correct-horse-battery")

    page.goto("/store/docs")
    page.wait_for_selector("#operations-customers-customers_me")
    page.locator("button.authorize").first.click()
    dialog = page.locator(".dialog-ux .modal-ux")
    dialog.locator("input").first.fill(token)
    dialog.locator("button.authorize").click()
    dialog.locator("button.btn-done").click()

    block = _open_operation(page, "customers", "customers_me")
    status, body = _execute(block)
    assert status == "200", body
    assert body["customer"]["email"] == "explorer@example.com"
    page.screenshots("customers-me-authorized")
    assert not outside_requests, outside_requests
