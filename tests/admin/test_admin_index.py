"""Issue 11 item 7: the admin home lists the shop's apps first and dj-stripe's models under one entry."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.test import Client

from backoffice.templatetags.admin_index import admin_index_sections
from tests.admin.conftest import grant
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def djstripe_changelists() -> set[str]:
    return {
        f"/admin/djstripe/{model._meta.model_name}/"
        for model in admin.site._registry
        if model._meta.app_label == "djstripe"
    }


def sections_of(html: str) -> list[str]:
    """App labels of the index's top-level app modules, in page order (the mirror's inner ones aside)."""
    outside = html.split('id="ck-stripe-mirror"')[0]
    return re.findall(r'<div class="app-([a-z_]+) module', outside)


@pytest.fixture
def superuser_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_the_index_lists_the_shop_apps_first_then_django(superuser_client):
    html = superuser_client.get("/admin/").content.decode()

    assert sections_of(html) == ["orders", "webhooks", "catalog", "carts", "customers", "auth"]


def test_djstripe_models_are_one_collapsed_entry_after_the_shop(superuser_client):
    html = superuser_client.get("/admin/").content.decode()

    outside, mirror = html.split('<details class="module" id="ck-stripe-mirror">')
    mirror = mirror.split("</details>")[0]
    assert "djstripe" not in outside  # no dj-stripe model or link at top level
    assert html.count('id="ck-stripe-mirror"') == 1
    assert f"Stripe mirror ({len(djstripe_changelists())} models)</summary>" in mirror
    assert "<details" in html and "<details open" not in html  # collapsed


def test_every_djstripe_model_is_reachable_from_the_mirror_entry(superuser_client):
    html = superuser_client.get("/admin/").content.decode()
    mirror = html.split('id="ck-stripe-mirror"')[1].split("</details>")[0]

    linked = set(re.findall(r'href="(/admin/djstripe/[a-z0-9_]+/)"', mirror))
    assert len(djstripe_changelists()) > 20
    assert linked == djstripe_changelists()
    for url in sorted(linked)[:3]:  # and the links open (every one is crawled by tests/test_no_external_assets.py)
        assert superuser_client.get(url).status_code == 200


def test_staff_without_djstripe_permissions_see_no_mirror(staff_client):
    html = staff_client.get("/admin/").content.decode()

    assert 'id="ck-stripe-mirror"' not in html and "Stripe mirror" not in html and "/admin/djstripe/" not in html
    assert sections_of(html) == ["orders", "webhooks"]


def test_staff_with_one_djstripe_permission_see_only_that_model(staff, staff_client):
    grant(staff, "djstripe.view_paymentintent")

    html = staff_client.get("/admin/").content.decode()

    assert "Stripe mirror (1 model)</summary>" in html
    assert set(re.findall(r'href="(/admin/djstripe/[a-z0-9_]+/)"', html)) == {"/admin/djstripe/paymentintent/"}


def test_a_staff_member_with_no_app_is_told_so(client):
    client.force_login(UserFactory(is_staff=True))

    html = client.get("/admin/").content.decode()

    assert "permission to view or edit anything" in html
    assert html.count("permission to view or edit anything") == 1


def test_sections_keep_unknown_apps_of_ours_after_the_known_ones():
    app_list = [{"app_label": label, "models": [{}]} for label in ("auth", "alpha", "djstripe", "carts", "orders")]

    sections = admin_index_sections(app_list=app_list)

    assert [app["app_label"] for app in sections.shop] == ["orders", "carts", "alpha"]
    assert [app["app_label"] for app in sections.other] == ["auth"]
    assert sections.stripe_mirror_models == 1
