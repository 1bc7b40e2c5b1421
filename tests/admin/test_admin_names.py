"""Issue 11 item 7: staff are shown by name and email in the back office, never as ``cus_…`` ids."""

from __future__ import annotations

import re

import pytest
from django.utils.html import escape

from backoffice.forms import amount_input
from catalog.models import Region
from customers.selectors import users_display_names
from orders.models import CheckoutIncident, OrderEvent
from payments.models import LedgerEntry, LedgerEntryKind, LedgerEntryStatus
from tests.admin.conftest import grant, order_url
from tests.admin.test_money_actions import post
from tests.factories import RegionFactory, UserFactory
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db


def shown(user) -> str:
    return escape(f"{user.first_name} {user.last_name} <{user.email}>")


def test_users_display_names_full_name_and_email_or_the_email_in_one_query(django_assert_num_queries):
    named = UserFactory(first_name="Grace", last_name="Hopper", email="grace@example.com")
    unnamed = UserFactory(first_name="", last_name="", email="ops@example.com")

    with django_assert_num_queries(1):
        names = users_display_names(user_ids={named.pk, unnamed.pk, "cus_gone", ""})

    assert names == {named.pk: "Grace Hopper <grace@example.com>", unnamed.pk: "ops@example.com"}


def test_users_display_names_without_ids_makes_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert users_display_names(user_ids=["", ""]) == {}


def test_a_capture_by_staff_shows_their_name_in_the_ledger_and_timeline(staff, staff_client, placed_order):
    staff.first_name, staff.last_name = "Grace", "Hopper"
    staff.save()

    post(staff_client, placed_order, "capture", amount=amount_input(placed_order.total, "usd"))

    assert LedgerEntry.objects.filter(
        payment_intent_id=placed_order.payment_intent_id, kind=LedgerEntryKind.CAPTURE, actor_user_id=staff.pk
    ).exists()
    assert OrderEvent.objects.filter(order=placed_order, actor_user_id=staff.pk).exists()
    html = staff_client.get(order_url(placed_order)).content.decode()
    ledger = html[html.index('id="ck-ledger"') : html.index('id="ck-disputes"')]
    timeline = html[html.index('id="ck-timeline"') :]
    assert shown(staff) in ledger
    assert shown(staff) in timeline
    assert staff.pk not in html


@pytest.fixture
def order_with_actors(db):
    order = OrderFactory(payment_intent_id="pi_names", payment_status="authorized")
    LedgerEntry.objects.create(
        payment_intent_id=order.payment_intent_id,
        order_id=order.id,
        kind=LedgerEntryKind.AUTHORIZATION,
        amount=order.total,
        currency_code=order.currency_code,
        idempotency_key="names:auth",
        actor="stripe",
    )
    OrderEvent.objects.create(order=order, type="order_placed", actor="customer")
    OrderEvent.objects.create(order=order, type="payment_authorized", actor="stripe")
    OrderEvent.objects.create(order=order, type="authorization_expiring", actor="system")
    return order


def _by_cells(html: str) -> list[str]:
    return re.findall(r'class="[^"]*ck-by[^"]*"[^>]*>([^<]*)<', html)


def test_system_actors_are_named_stripe_system_customer(staff_client, order_with_actors):
    html = staff_client.get(order_url(order_with_actors)).content.decode()

    # ledger: the authorization by Stripe; timeline (newest first): System, Stripe, Customer
    assert _by_cells(html) == ["Stripe", "System", "Stripe", "Customer"]


def test_a_pending_operation_names_the_staff_member_who_started_it(staff_client, order_with_actors):
    starter = UserFactory(first_name="Katherine", last_name="Johnson", is_staff=True)
    LedgerEntry.objects.create(
        payment_intent_id="pi_names",
        order_id=order_with_actors.id,
        kind=LedgerEntryKind.CAPTURE,
        status=LedgerEntryStatus.PENDING,
        amount=500,
        currency_code=order_with_actors.currency_code,
        idempotency_key="names:cap",
        actor="staff",
        actor_user_id=starter.pk,
    )

    html = staff_client.get(order_url(order_with_actors)).content.decode()

    pending = html[html.index('id="ck-pending-1"') :]
    pending = pending[: pending.index("</p>")]
    assert f"by {shown(starter)}:" in pending
    assert starter.pk not in html


def test_an_id_of_no_user_is_marked_unknown(staff_client, order_with_actors):
    OrderEvent.objects.create(order=order_with_actors, type="note", actor="staff", actor_user_id="cus_demo_staff")

    html = staff_client.get(order_url(order_with_actors)).content.decode()

    assert "Staff (unknown user cus_demo_staff)" in _by_cells(html)


def test_names_cost_one_query_whatever_the_number_of_staff(staff_client, order_with_actors, django_assert_num_queries):
    order = order_with_actors
    first = UserFactory(is_staff=True)
    OrderEvent.objects.create(order=order, type="note", actor="staff", actor_user_id=first.pk)
    with django_assert_num_queries(30, exact=False) as few:  # a ceiling, to learn the page's count
        staff_client.get(order_url(order))
    others = [UserFactory(is_staff=True, first_name=f"Staff{n}") for n in range(6)]
    for n, user in enumerate(others):
        OrderEvent.objects.create(order=order, type="note", actor="staff", actor_user_id=user.pk)
        LedgerEntry.objects.create(
            payment_intent_id=order.payment_intent_id,
            order_id=order.id,
            kind=LedgerEntryKind.VOID,
            status=LedgerEntryStatus.FAILED,
            amount=1,
            currency_code=order.currency_code,
            idempotency_key=f"names:void:{n}",
            actor="staff",
            actor_user_id=user.pk,
        )

    with django_assert_num_queries(len(few.captured_queries)):
        html = staff_client.get(order_url(order)).content.decode()

    for user in [first, *others]:
        assert shown(user) in html


def test_the_incident_list_names_the_actor(staff_client, staff):
    grant(staff, "orders.view_checkoutincident")
    CheckoutIncident.objects.create(
        kind="orphan_payment",
        cart_id="cart_x",
        payment_intent_id="pi_x",
        amount=100,
        currency_code="usd",
        resolution="payment_canceled",
        actor="stripe",
    )

    html = staff_client.get("/admin/orders/checkoutincident/").content.decode()

    assert '<td class="field-actor">Stripe</td>' in html


# --- Country names in the admin -----------------------------------------------------------------


def test_the_region_form_picks_countries_by_name_and_keeps_their_order(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    region = RegionFactory(name="Europe", currency_code="eur", countries=["FR", "DE"])
    url = f"/admin/catalog/region/{region.pk}/change/"

    page = client.get(url).content.decode()
    assert '<option value="DE" selected>Germany</option>' in page
    assert '<option value="AT">Austria</option>' in page
    assert (
        '<td class="field-country_names">France, Germany</td>' in client.get("/admin/catalog/region/").content.decode()
    )

    response = client.post(
        url,
        {
            "name": "Europe",
            "currency_code": "eur",
            "countries": ["AT", "DE", "FR"],
            "tax_rate_bps": 0,
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Region.objects.get(pk=region.pk).countries == ["FR", "DE", "AT"]
