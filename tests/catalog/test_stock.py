"""Stock holds: ``stock_reserve`` (payment session) and ``stock_consume`` (order placement).

Each is one statement on PostgreSQL (issue 13). These tests pin what that statement must keep of
the former ORM path: the TTL, a cart's re-reservation replacing its hold, other carts' expired
holds not counting, the ``reserved`` counter, the typed 409 with nothing changed when short, and
-- with two real connections -- no oversell when another cart's hold commits while the statement
waits for the stock row lock.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from catalog import services
from catalog.models import StockLevel, StockReservation
from common.errors import InsufficientInventory
from tests.factories import VariantFactory

TTL = timedelta(minutes=15)


def _holds(cart_id: str) -> dict[str, int]:
    return dict(StockReservation.objects.filter(cart_id=cart_id).values_list("variant_id", "quantity"))


def _stock(variant: Any) -> tuple[int, int]:
    row = StockLevel.objects.get(variant=variant)
    return row.on_hand, row.reserved


@pytest.mark.django_db
def test_stock_reserve_holds_until_now_plus_ttl_and_counts_reserved():
    a, b = VariantFactory(stock=5), VariantFactory(stock=5)
    now = timezone.now()

    services.stock_reserve(cart_id="cart_a", quantities={a.id: 2, b.id: 1}, ttl=TTL, now=now)

    assert _holds("cart_a") == {a.id: 2, b.id: 1}
    assert set(StockReservation.objects.values_list("expires_at", flat=True)) == {now + TTL}
    assert (_stock(a), _stock(b)) == ((5, 2), (5, 1))


@pytest.mark.django_db
def test_stock_reserve_again_replaces_the_carts_hold_and_refreshes_dropped_variants():
    a, b, c = VariantFactory(stock=5), VariantFactory(stock=5), VariantFactory(stock=5)
    services.stock_reserve(cart_id="cart_a", quantities={a.id: 5, b.id: 2}, ttl=TTL)
    later = timezone.now() + timedelta(minutes=1)

    # Its own hold of 5 does not count against the cart; b is no longer asked for.
    services.stock_reserve(cart_id="cart_a", quantities={a.id: 4, c.id: 1}, ttl=TTL, now=later)

    assert _holds("cart_a") == {a.id: 4, c.id: 1}
    assert set(StockReservation.objects.values_list("expires_at", flat=True)) == {later + TTL}
    assert (_stock(a), _stock(b), _stock(c)) == ((5, 4), (5, 0), (5, 1))


@pytest.mark.django_db
def test_stock_reserve_ignores_other_carts_expired_holds():
    variant = VariantFactory(stock=5)
    now = timezone.now()
    StockReservation.objects.create(variant=variant, cart_id="cart_gone", quantity=4, expires_at=now)
    StockReservation.objects.create(variant=variant, cart_id="cart_live", quantity=1, expires_at=now + TTL)

    services.stock_reserve(cart_id="cart_a", quantities={variant.id: 4}, ttl=TTL, now=now)

    assert _holds("cart_a") == {variant.id: 4}
    assert _stock(variant) == (5, 5)  # 4 + the live 1; the expired 4 no longer counts


@pytest.mark.django_db
def test_stock_reserve_short_raises_409_and_changes_nothing():
    plenty, scarce = VariantFactory(stock=50), VariantFactory(stock=5, sku="SCARCE-1")
    services.stock_reserve(cart_id="cart_other", quantities={scarce.id: 3}, ttl=TTL)
    services.stock_reserve(cart_id="cart_a", quantities={plenty.id: 1}, ttl=TTL)
    before = list(StockReservation.objects.order_by("pk").values_list("pk", "cart_id", "quantity", "expires_at"))

    with pytest.raises(InsufficientInventory) as raised:
        services.stock_reserve(cart_id="cart_a", quantities={plenty.id: 7, scarce.id: 3}, ttl=TTL)

    assert (raised.value.code, raised.value.param, raised.value.http_status) == (
        "insufficient_inventory",
        scarce.id,
        409,
    )
    assert str(raised.value.message) == "Only 2 left of SCARCE-1."
    assert list(StockReservation.objects.order_by("pk").values_list("pk", "cart_id", "quantity", "expires_at")) == (
        before
    )
    assert (_stock(plenty), _stock(scarce)) == ((50, 1), (5, 3))


@pytest.mark.django_db
def test_stock_reserve_backorder_and_untracked_variants():
    backorder = VariantFactory(stock=1, allow_backorder=True)
    untracked = VariantFactory(stock=0, manage_inventory=False)

    services.stock_reserve(cart_id="cart_a", quantities={backorder.id: 3, untracked.id: 9, "variant_none": 1}, ttl=TTL)

    assert _holds("cart_a") == {backorder.id: 3}
    assert (_stock(backorder), _stock(untracked)) == ((1, 3), (0, 0))


@pytest.mark.django_db
@pytest.mark.parametrize("lines", [1, 50])
def test_stock_reserve_and_consume_are_one_statement_each(django_assert_num_queries, lines):
    variants = [VariantFactory(stock=10) for _ in range(lines)]
    quantities = {v.id: 2 for v in variants}
    services.stock_reserve(cart_id="cart_other", quantities=quantities, ttl=TTL)

    with django_assert_num_queries(1):
        services.stock_reserve(cart_id="cart_a", quantities=quantities, ttl=TTL)
    with django_assert_num_queries(1):
        services.stock_reserve(cart_id="cart_a", quantities=quantities, ttl=TTL)  # a retry replaces
    with django_assert_num_queries(1):
        services.stock_consume(cart_id="cart_a", quantities=quantities)

    assert _holds("cart_a") == {}
    assert {_stock(v) for v in variants} == {(8, 2)}


@pytest.mark.django_db
def test_stock_consume_decrements_on_hand_and_drops_the_carts_hold():
    a, b = VariantFactory(stock=5), VariantFactory(stock=5, allow_backorder=True)
    untracked = VariantFactory(stock=0, manage_inventory=False)
    services.stock_reserve(cart_id="cart_a", quantities={a.id: 2, b.id: 7}, ttl=TTL)
    services.stock_reserve(cart_id="cart_other", quantities={a.id: 3}, ttl=TTL)

    services.stock_consume(cart_id="cart_a", quantities={a.id: 2, b.id: 7, untracked.id: 1})

    assert _holds("cart_a") == {}
    assert _holds("cart_other") == {a.id: 3}
    assert (_stock(a), _stock(b), _stock(untracked)) == ((3, 3), (-2, 0), (0, 0))


@pytest.mark.django_db
def test_stock_consume_short_raises_and_changes_nothing():
    variant = VariantFactory(stock=4, sku="HOT-1")
    services.stock_reserve(cart_id="cart_other", quantities={variant.id: 3}, ttl=TTL)
    services.stock_reserve(cart_id="cart_a", quantities={variant.id: 1}, ttl=TTL)

    with pytest.raises(InsufficientInventory, match="Only 1 left of HOT-1."):
        services.stock_consume(cart_id="cart_a", quantities={variant.id: 2})

    assert (_holds("cart_a"), _holds("cart_other")) == ({variant.id: 1}, {variant.id: 3})
    assert _stock(variant) == (4, 4)


def _wait_until_a_backend_waits_for_a_lock() -> None:
    with connection.cursor() as cursor:
        for _ in range(5000):
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
            threading.Event().wait(0.01)
    raise AssertionError("the second hold never waited for the stock row lock")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("second", ["reserve", "consume"])
def test_hold_committed_while_waiting_for_the_lock_is_counted(second):
    """The statement's snapshot predates the other cart's hold; the locked row shows it was
    written meanwhile, so the statement runs again and refuses instead of overselling."""
    variant = VariantFactory(stock=3)
    first_held, release = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                services.stock_reserve(cart_id="cart_first", quantities={variant.id: 3}, ttl=TTL)
                first_held.set()
                release.wait(30)
        finally:
            connections.close_all()

    def then() -> None:
        try:
            with transaction.atomic():
                if second == "reserve":
                    services.stock_reserve(cart_id="cart_second", quantities={variant.id: 1}, ttl=TTL)
                else:
                    services.stock_consume(cart_id="cart_second", quantities={variant.id: 1})
            outcome["result"] = "held"
        except InsufficientInventory as exc:
            outcome["result"] = str(exc.message)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=then)]
    threads[0].start()
    assert first_held.wait(30)
    threads[1].start()
    try:
        _wait_until_a_backend_waits_for_a_lock()
    finally:
        release.set()
        for thread in threads:
            thread.join(60)

    assert outcome == {"result": f"Only 0 left of {variant.sku}."}
    assert list(StockReservation.objects.values_list("cart_id", "quantity")) == [("cart_first", 3)]
    assert _stock(variant) == (3, 3)
