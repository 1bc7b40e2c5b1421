"""The custom permissions of Order gate the actions: no button without them, 403 on a direct POST."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from backoffice.forms import amount_input
from orders.models import Order, PaymentStatus
from payments.models import LedgerEntry, LedgerEntryKind
from tests.admin.conftest import MONEY_PERMISSIONS, action_url, ledger_version, order_url

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_permissions_exist_on_the_order_model():
    codenames = {codename for codename, _ in Order._meta.permissions}
    assert codenames == set(MONEY_PERMISSIONS)


def test_staff_without_refund_payment_gets_403_and_does_not_see_the_refund_action(
    staff_factory, staff_client, placed_order
):
    order = placed_order
    version = ledger_version(staff_client, order, "capture")
    staff_client.post(
        action_url(order, "capture"), {"amount": amount_input(order.total, "usd"), "ledger_version": version}
    )
    order.refresh_from_db()
    assert order.payment_status == PaymentStatus.CAPTURED
    clerk = client_for(staff_factory("orders.capture_payment", "orders.fulfil_order"))

    page = clerk.get(order_url(order)).content.decode()
    assert "Refund payment" not in page and action_url(order, "refund") not in page
    assert "Mark fulfilled" in page  # what the clerk may do is there

    assert clerk.get(action_url(order, "refund")).status_code == 403
    response = clerk.post(
        action_url(order, "refund"),
        {"amount": amount_input(order.total, "usd"), "reason": "duplicate", "ledger_version": 3},
    )
    assert response.status_code == 403
    assert not LedgerEntry.objects.filter(
        payment_intent_id=order.payment_intent_id, kind=LedgerEntryKind.REFUND
    ).exists()


@pytest.mark.parametrize(
    ("action", "permission"),
    [
        ("capture", "capture_payment"),
        ("cancel", "cancel_payment"),
        ("refund", "refund_payment"),
        ("fulfil", "fulfil_order"),
        ("ship", "fulfil_order"),
        ("deliver", "fulfil_order"),
    ],
)
def test_each_action_needs_its_permission(staff_factory, placed_order, action, permission):
    others = [f"orders.{p}" for p in MONEY_PERMISSIONS if p != permission]
    client = client_for(staff_factory(*others))

    assert client.get(action_url(placed_order, action)).status_code == 403
    assert (
        client.post(
            action_url(placed_order, action), {"ledger_version": 1, "amount": "1.00", "reason": "x"}
        ).status_code
        == 403
    )
    client_with = client_for(staff_factory(f"orders.{permission}"))
    assert client_with.get(action_url(placed_order, action)).status_code == 200


def test_staff_with_view_only_sees_the_order_and_no_actions(staff_factory, placed_order):
    viewer = client_for(staff_factory())

    page = viewer.get(order_url(placed_order))

    assert page.status_code == 200
    html = page.content.decode()
    assert "Payment ledger" in html and "Timeline" in html
    assert 'class="ck-actions"' not in html
    assert 'name="_save"' not in html  # read-only: nothing to save


def test_the_order_itself_cannot_be_edited_added_or_deleted_even_by_a_superuser(placed_order, django_user_model):
    admin_user = django_user_model.objects.create_superuser("root@example.com", "correct-horse-battery")
    client = client_for(admin_user)

    assert client.post(order_url(placed_order), {"status": "completed"}).status_code == 403
    assert client.get("/admin/orders/order/add/").status_code == 403
    assert client.post(f"/admin/orders/order/{placed_order.pk}/delete/").status_code == 403
    assert Order.objects.get(pk=placed_order.pk).status == "pending"


def test_anonymous_users_are_sent_to_the_login_page(client, placed_order):
    response = client.post(action_url(placed_order, "capture"), {"amount": "1.00", "ledger_version": 1})

    assert response.status_code == 302 and "/admin/login/" in response["Location"]
