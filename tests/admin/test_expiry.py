"""Authorization expiry: the beat task warns once per order whose card authorization lapses within 24 h."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from orders import expiry, tasks
from orders.models import OrderEvent
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db


def test_warns_once_for_each_authorization_expiring_within_24_hours(caplog):
    now = timezone.now()
    soon = OrderFactory(
        payment_status="authorized", authorized_at=now - timedelta(days=6), capture_before=now + timedelta(hours=5)
    )
    unknown = OrderFactory(
        payment_status="authorized", authorized_at=now - timedelta(days=6, hours=20), capture_before=None
    )
    lapsed = OrderFactory(
        payment_status="authorized", authorized_at=now - timedelta(days=8), capture_before=now - timedelta(hours=1)
    )
    OrderFactory(payment_status="authorized", authorized_at=now, capture_before=now + timedelta(days=6))  # far
    OrderFactory(
        payment_status="captured", authorized_at=now - timedelta(days=6), capture_before=now + timedelta(hours=2)
    )

    with caplog.at_level(logging.WARNING, logger="orders.expiry"):
        assert expiry.order_authorizations_expiry_warn(now=now) == 3

    events = OrderEvent.objects.filter(type="authorization_expiring")
    assert {e.order_id for e in events} == {soon.pk, unknown.pk, lapsed.pk}
    by_order = {e.order_id: e for e in events}
    assert by_order[soon.pk].payload["hours_left"] == 5 and by_order[soon.pk].payload["expired"] is False
    assert by_order[unknown.pk].payload["expires_at"] == (unknown.authorized_at + timedelta(days=7)).isoformat()
    assert by_order[lapsed.pk].payload["expired"] is True
    assert {e.actor for e in events} == {"system"} and {e.payload["level"] for e in events} == {"warning"}
    assert len([r for r in caplog.records if "order.authorization_expiring" in r.getMessage()]) == 3

    assert expiry.order_authorizations_expiry_warn(now=now + timedelta(minutes=30)) == 0  # once per order


def test_the_beat_task_runs_the_warning_and_is_scheduled():
    now = timezone.now()
    OrderFactory(
        payment_status="authorized", authorized_at=now - timedelta(days=6), capture_before=now + timedelta(hours=3)
    )

    assert tasks.warn_expiring_authorizations() == 1
    schedule = settings.CELERY_BEAT_SCHEDULE["warn-expiring-authorizations"]
    assert schedule["task"] == tasks.warn_expiring_authorizations.name == "orders.warn_expiring_authorizations"


def test_the_warning_shows_in_the_order_timeline(staff_client):
    now = timezone.now()
    order = OrderFactory(
        payment_status="authorized", authorized_at=now - timedelta(days=6), capture_before=now + timedelta(hours=3)
    )
    expiry.order_authorizations_expiry_warn(now=now)

    html = staff_client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()

    assert "Authorization expiring" in html
    assert "The card authorization expires on" in html
