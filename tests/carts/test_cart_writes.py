"""Cart writes in few statements (issue 13) stay correct: a write that waited for another writer
sees that writer's lines; a write releases the cart's own stock hold, keeps the others'."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.test import APIClient

from carts.models import Cart, LineItem
from catalog import services as catalog_services
from catalog.models import StockLevel, StockReservation
from tests.factories import CartFactory, LineItemFactory, RegionFactory, VariantFactory


def _waiting_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
def test_line_add_that_waited_for_another_writer_merges_into_its_line():
    """The lock-and-read statement starts before the other writer commits: its lines subquery sees
    the snapshot from before that commit, so the service must notice and read the lines again
    (else it would insert a second line of the variant: a unique violation, a 500)."""
    region = RegionFactory(currency_code="usd", countries=["US"])
    variant = VariantFactory()
    cart = CartFactory(region=region)
    locked, release = threading.Event(), threading.Event()
    result: dict[str, object] = {}

    def other_writer() -> None:
        try:
            with transaction.atomic():
                Cart.objects.select_for_update().get(pk=cart.pk)
                LineItem.objects.create(
                    cart=cart, variant=variant, sku=variant.sku, title="x", quantity=2, unit_price=1000
                )
                Cart.objects.filter(pk=cart.pk).update(version=F("version") + 1)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    def line_add() -> None:
        try:
            result["response"] = APIClient().post(
                f"/store/carts/{cart.pk}/line-items", {"variant_id": variant.id, "quantity": 1}, format="json"
            )
        finally:
            connection.close()

    writer = threading.Thread(target=other_writer)
    writer.start()
    assert locked.wait(10)
    adder = threading.Thread(target=line_add)
    adder.start()
    try:
        deadline = time.monotonic() + 10
        while not _waiting_for_a_lock():
            assert time.monotonic() < deadline, "the line add never waited for the cart lock"
            time.sleep(0.01)
    finally:
        release.set()
        writer.join(10)
        adder.join(10)

    response = result["response"]
    assert response.status_code == 200, response.content  # type: ignore[attr-defined]
    items = response.json()["cart"]["items"]  # type: ignore[attr-defined]
    assert [(i["variant_id"], i["quantity"]) for i in items] == [(variant.id, 3)]
    assert list(LineItem.objects.filter(cart=cart).values_list("quantity", flat=True)) == [3]
    assert Cart.objects.get(pk=cart.pk).version == 3


@pytest.mark.django_db
@pytest.mark.parametrize("lines", [1, 50])
def test_cart_write_releases_its_hold_and_keeps_other_carts(api_client, region_usd, lines):
    variants = [VariantFactory(stock=10) for _ in range(lines)]
    cart, other = CartFactory(region=region_usd), CartFactory(region=region_usd)
    for variant in variants:
        LineItemFactory(cart=cart, variant=variant, quantity=2)
    ttl = timedelta(minutes=15)
    catalog_services.stock_reserve(cart_id=cart.pk, quantities={v.id: 2 for v in variants}, ttl=ttl)
    catalog_services.stock_reserve(cart_id=other.pk, quantities={variants[0].id: 3}, ttl=ttl)
    # An expired hold of a third cart no longer counts in ``reserved``.
    StockReservation.objects.create(
        variant=variants[-1], cart_id="cart_gone", quantity=4, expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert StockLevel.objects.get(variant=variants[0]).reserved == 5

    response = api_client.post(f"/store/carts/{cart.pk}", {"email": "ada@example.com"}, format="json")

    assert response.status_code == 200, response.content
    assert not StockReservation.objects.filter(cart_id=cart.pk).exists()
    assert StockReservation.objects.filter(cart_id=other.pk).count() == 1
    reserved = dict(StockLevel.objects.filter(variant__in=variants).values_list("variant_id", "reserved"))
    assert reserved == {v.id: (3 if v == variants[0] else 0) for v in variants}
    assert Cart.objects.get(pk=cart.pk).version == 2
