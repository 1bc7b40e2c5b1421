"""Issue 11 item 1: every admin link works with Django's quoting of ids (``_`` is escaped ``_5F``).

The tests follow the links the pages render, as a staff member clicking would, instead of
building URLs from ``order.pk``.
"""

from __future__ import annotations

import re

import pytest

from backoffice.forms import amount_input
from orders.models import Order
from payments import ledger
from tests.admin.conftest import messages_of

pytestmark = pytest.mark.django_db


def _links(html: str, pattern: str) -> list[str]:
    return [m for m in re.findall(r'href="([^"]+)"', html) if re.search(pattern, m)]


def test_the_order_list_links_to_a_full_order_page_and_its_actions_work(staff_client, placed_order: Order):
    listing = staff_client.get("/admin/orders/order/").content.decode()
    [change_url] = set(_links(listing, r"/admin/orders/order/[^/]+/change/"))
    assert "_5F" in change_url  # Django's admin quoting of the order_... id

    page = staff_client.get(change_url)
    assert page.status_code == 200
    html = page.content.decode()
    assert f"#{placed_order.display_id}" in html and "Payment ledger" in html and "pi:" in html  # the full page
    [capture_url] = set(_links(html, r"/capture/$"))

    form = staff_client.get(capture_url)
    assert form.status_code == 200
    version = re.search(r'name="ledger_version" value="(\d+)"', form.content.decode()).group(1)
    done = staff_client.post(
        capture_url, {"amount": amount_input(placed_order.total, "usd"), "ledger_version": version}, follow=True
    )

    [(level, _)] = messages_of(done)
    assert level == "success"
    assert ledger.ledger_totals(payment_intent_id=placed_order.payment_intent_id).captured == placed_order.total
