"""The order list (filters, search, money columns, query budget) and the read-only order page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import OrderEvent
from payments.models import Dispute, LedgerEntry, LedgerEntryKind
from tests.admin.conftest import order_url
from tests.factories import CartFactory, RegionFactory
from tests.factories.orders import OrderFactory, OrderLineFactory

pytestmark = pytest.mark.django_db

LIST = "/admin/orders/order/"


def listed(client, query: str = "") -> set[int]:
    response = client.get(LIST + query)
    assert response.status_code == 200
    return {order.display_id for order in response.context["cl"].result_list}


def authorization(order, amount: int | None = None) -> None:
    LedgerEntry.objects.create(
        payment_intent_id=order.payment_intent_id,
        order_id=order.id,
        kind=LedgerEntryKind.AUTHORIZATION,
        amount=amount or order.total,
        currency_code=order.currency_code,
        idempotency_key=f"pi:{order.payment_intent_id}:authorization",
    )


@pytest.fixture
def orders(db):
    now = timezone.now()
    jp = RegionFactory(name="Japan", currency_code="jpy", countries=["JP"], tax_rate_bps=1000, tax_inclusive=True)
    kw = RegionFactory(name="Kuwait", currency_code="kwd", countries=["KW"], tax_rate_bps=500)
    usd = OrderFactory(
        display_id=1001, email="ada@example.com", total=1200, payment_status="captured", payment_intent_id="pi_usd"
    )
    jpy = OrderFactory(
        display_id=1002,
        cart=CartFactory(region=jp),
        email="hana@example.jp",
        total=1200,
        payment_status="authorized",
        authorized_at=now - timedelta(days=6, hours=12),
        capture_before=now + timedelta(hours=12),
        payment_intent_id="pi_jpy",
    )
    kwd = OrderFactory(
        display_id=1003,
        cart=CartFactory(region=kw),
        email="noor@example.kw",
        total=1250,
        payment_status="authorized",
        authorized_at=now - timedelta(days=8),
        capture_before=None,  # unknown: authorized + 7 days, so expired
        payment_intent_id="pi_kwd",
    )
    far = OrderFactory(
        display_id=1004,
        total=5000,
        payment_status="authorized",
        authorized_at=now,
        capture_before=now + timedelta(days=7),
    )
    for order in (usd, jpy, kwd, far):
        authorization(order)
    LedgerEntry.objects.create(
        payment_intent_id="pi_usd",
        order_id=usd.id,
        kind=LedgerEntryKind.CAPTURE,
        amount=1200,
        currency_code="usd",
        idempotency_key="cap-usd",
    )
    LedgerEntry.objects.create(
        payment_intent_id="pi_usd",
        order_id=usd.id,
        kind=LedgerEntryKind.REFUND,
        amount=300,
        currency_code="usd",
        idempotency_key="ref-usd",
    )
    Dispute.objects.create(
        stripe_dispute_id="dp_1",
        payment_intent_id="pi_usd",
        order_id=usd.id,
        amount=900,
        currency_code="usd",
        status="needs_response",
        is_open=True,
    )
    return {"usd": usd, "jpy": jpy, "kwd": kwd, "far": far}


def test_money_columns_are_formatted_per_currency(staff_client, orders):
    html = staff_client.get(LIST).content.decode()

    assert "$12.00" in html  # usd total
    assert "¥1,200" in html  # jpy total (zero-decimal)
    assert "KD 1.250" in html  # kwd total (three decimals)
    assert "$3.00" in html  # refunded column from the ledger


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?payment_status__exact=authorized", {1002, 1003, 1004}),
        ("?status__exact=pending", {1001, 1002, 1003, 1004}),
        ("?fulfillment_status__exact=not_fulfilled", {1001, 1002, 1003, 1004}),
        ("?currency_code=jpy", {1002}),
        ("?dispute=open", {1001}),
        ("?dispute=none", {1002, 1003, 1004}),
        ("?authorization=expiring", {1002}),
        ("?authorization=expired", {1003}),
        ("?authorization=awaiting", {1002, 1003, 1004}),
    ],
)
def test_filters(staff_client, orders, query, expected):
    assert listed(staff_client, query) == expected


def test_region_and_created_date_filters(staff_client, orders):
    region = orders["kwd"].region
    assert listed(staff_client, f"?region__id__exact={region.pk}") == {1003}
    today = timezone.now().date()
    since = f"{today}+00:00:00%2B00:00"
    until = f"{today + timedelta(days=1)}+00:00:00%2B00:00"
    assert listed(staff_client, f"?created_at__gte={since}&created_at__lt={until}") == {1001, 1002, 1003, 1004}
    assert listed(staff_client, f"?created_at__gte={until}") == set()


@pytest.mark.parametrize(
    ("term", "expected"),
    [("#1002", {1002}), ("1003", {1003}), ("ada@example.com", {1001}), ("pi_kwd", {1003}), ("example.jp", {1002})],
)
def test_search_by_number_email_payment_intent(staff_client, orders, term, expected):
    assert listed(staff_client, f"?q={term.replace('#', '%23')}") == expected


def test_search_by_order_id(staff_client, orders):
    assert listed(staff_client, f"?q={orders['far'].pk}") == {1004}


def test_the_list_marks_authorizations_expiring_soon(staff_client, orders):
    html = staff_client.get(LIST).content.decode()

    assert "11 h left" in html or "12 h left" in html  # #1002
    assert ">expired<" in html  # #1003
    assert "2 authorizations expire within 24 h or have expired" in html


def test_the_list_is_a_constant_number_of_queries(staff_client, orders, django_assert_max_num_queries):
    with django_assert_max_num_queries(12) as few:
        staff_client.get(LIST)
    for n in range(30):
        authorization(OrderFactory(display_id=2000 + n))
    with django_assert_max_num_queries(len(few.captured_queries)):
        staff_client.get(LIST)


def test_the_order_page_shows_lines_totals_addresses_ledger_disputes_and_timeline(staff_client, orders):
    order = orders["usd"]
    order.shipping_address = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "address_1": "1 Loom Street",
        "city": "Springfield",
        "postal_code": "12345",
        "country_code": "US",
    }
    order.shipping_name = "Standard"
    order.save()
    OrderLineFactory(
        order=order,
        title="Washed Linen / Natural",
        sku="LIN-WSH-NAT",
        unit_price=1450,
        quantity=2,
        subtotal=2900,
        tax_total=254,
        total=3154,
    )
    OrderEvent.objects.create(order=order, type="order_placed", actor="customer", payload={"total": 1200, "lines": 1})

    response = staff_client.get(order_url(order))

    assert response.status_code == 200
    html = response.content.decode()
    for expected in (
        "Washed Linen / Natural",
        "LIN-WSH-NAT",
        "$14.50",
        "$31.54",  # lines
        "Subtotal",
        "Total",
        "$12.00",  # totals
        "1 Loom Street",
        "Springfield 12345",
        "United States of America",  # address
        "Payment ledger",
        "cap-usd",
        "ref-usd",
        "Refundable now",
        "$9.00",  # ledger: 12.00 captured - 3.00 refunded
        "dp_1",
        "needs_response",
        "Dispute open",  # disputes
        "Order placed",
        "total: $12.00",  # timeline
    ):
        assert expected in html, expected


def test_the_order_page_is_a_constant_number_of_queries(staff_client, orders, django_assert_max_num_queries):
    order = orders["usd"]
    with django_assert_max_num_queries(30) as few:
        staff_client.get(order_url(order))
    for n in range(10):
        OrderLineFactory(order=order)
        OrderEvent.objects.create(order=order, type="note", actor="system", payload={"n": n})
    with django_assert_max_num_queries(len(few.captured_queries)):
        staff_client.get(order_url(order))


def test_the_admin_home_links_the_back_office(staff_client, orders):
    html = staff_client.get("/admin/").content.decode()

    assert "/admin/orders/order/dashboard/" in html
    assert "?authorization=expiring" in html and "?inbox=dead" in html
