"""dj-stripe's admin is read-only: its rows only mirror Stripe."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_every_djstripe_model_admin_is_read_only():
    request = RequestFactory().get("/admin/")
    request.user = UserFactory(is_staff=True, is_superuser=True)
    djstripe_admins = [m for model, m in admin.site._registry.items() if model._meta.app_label == "djstripe"]

    assert len(djstripe_admins) > 20
    for model_admin in djstripe_admins:
        assert not model_admin.has_add_permission(request), model_admin
        assert not model_admin.has_change_permission(request), model_admin
        assert not model_admin.has_delete_permission(request), model_admin
        assert set(model_admin.get_actions(request)) <= {"_resync_instances", "_sync_all_instances"}


def test_djstripe_add_page_is_forbidden_and_list_is_viewable(client):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)

    assert client.get("/admin/djstripe/paymentintent/add/").status_code == 403
    assert client.get("/admin/djstripe/customer/add/").status_code == 403
    assert client.get("/admin/djstripe/paymentintent/").status_code == 200
