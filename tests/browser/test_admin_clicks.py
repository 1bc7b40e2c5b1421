"""Issue 11 acceptance: from the admin index, a staff member clicks to an order and captures,
refunds and fulfils it in a real browser (no URL typed but the login page)."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command

from orders.models import Order
from payments import ledger
from tests.admin.conftest import place_order

STAFF_EMAIL = "clicks@example.com"
STAFF_PASSWORD = "staff-clicks-test-Pw9"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _confirm(page, action: str) -> None:
    page.locator(f"#ck-action-{action}").click()
    page.wait_for_url(re.compile(rf"/{action}/$"))
    page.locator("#ck-confirm").click()
    page.wait_for_url(re.compile(r"/change/$"))
    assert page.locator("ul.messagelist li.success").count() == 1, page.locator("ul.messagelist").inner_text()


def test_staff_click_from_the_admin_index_to_capture_refund_and_fulfil(page, localstripe):
    order = place_order(localstripe, quantity=1)
    call_command("ensure_staff_user", "--email", STAFF_EMAIL, "--password", STAFF_PASSWORD, stdout=io.StringIO())

    page.goto("/admin/login/?next=/admin/")
    page.locator("#id_username").fill(STAFF_EMAIL)
    page.locator("#id_password").fill(STAFF_PASSWORD)
    page.locator("input[type=submit]").click()
    page.wait_for_url(re.compile(r"/admin/$"))
    page.locator('a[href="/admin/orders/order/"]').first.click()
    page.wait_for_url(re.compile(r"/admin/orders/order/$"))
    page.locator("#result_list a").filter(has_text=f"#{order.display_id}").first.click()
    page.wait_for_url(re.compile(r"/change/$"))
    page.screenshots("admin-order")

    _confirm(page, "capture")
    page.locator("#ck-action-refund").click()
    page.wait_for_url(re.compile(r"/refund/$"))
    page.locator("#id_amount").fill("1.00")
    page.locator("#ck-confirm").click()
    page.wait_for_url(re.compile(r"/change/$"))
    assert page.locator("ul.messagelist li.success").count() == 1
    _confirm(page, "fulfil")
    page.screenshots("admin-order-done")

    order = Order.objects.get(pk=order.pk)
    totals = ledger.ledger_totals(payment_intent_id=order.payment_intent_id)
    assert (totals.captured, totals.refunded) == (order.total, 100)
    assert (order.payment_status, order.fulfillment_status) == ("partially_refunded", "fulfilled")
