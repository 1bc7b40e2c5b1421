"""Issue 10: what staff see when Stripe's answer to a payment action was lost, and the refund reason."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backoffice.forms import amount_input
from orders import services
from payments import gateway
from payments.models import LedgerEntry, LedgerEntryKind, LedgerEntryStatus
from tests.admin.conftest import messages_of, order_url
from tests.admin.test_money_actions import post

pytestmark = pytest.mark.django_db


def test_a_refund_whose_answer_was_lost_is_shown_pending_and_completed_once(staff_client, placed_order, localstripe):
    order = services.order_payment_capture(order_id=placed_order.id, actor="staff")
    localstripe.fault(path=r"^/v1/refunds$", status=500, when="after", count=3)

    response = post(staff_client, order, "refund", amount=amount_input(500, "usd"), reason="fraudulent")

    [(level, text)] = messages_of(response)
    assert level == "error" and "pending" in text and "never repeated" in text
    page = staff_client.get(order_url(order)).content.decode()
    assert "pending at Stripe" in page and "order:" in page
    row = LedgerEntry.objects.get(payment_intent_id=order.payment_intent_id, kind=LedgerEntryKind.REFUND)
    assert (row.status, row.refund_reason) == (LedgerEntryStatus.PENDING, "fraudulent")

    assert services.payment_operations_resume(older_than=timedelta(0)) == 1

    assert "pending at Stripe" not in staff_client.get(order_url(order)).content.decode()
    [refund] = gateway.refund_list(payment_intent=order.payment_intent_id)
    assert (refund["amount"], refund["reason"]) == (500, "fraudulent")
    row.refresh_from_db()
    assert (row.status, row.stripe_object_id) == (LedgerEntryStatus.SUCCEEDED, refund["id"])
