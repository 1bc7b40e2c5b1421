"""Soft stock reservations made by payment sessions: limits, expiry, races (real PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from catalog.models import StockLevel, StockReservation
from payments.models import PaymentSession
from tests.factories import VariantFactory


@pytest.mark.django_db
def test_reservation_fourth_cart_gets_409_until_ttl_passes(shop, fake_stripe):
    variant = VariantFactory(stock=3)
    carts = [shop.cart((variant, 1)) for _ in range(4)]
    for cart in carts[:3]:
        assert shop.pay(cart["id"]).status_code == 201

    response = shop.pay(carts[3]["id"])

    assert response.status_code == 409
    assert response.json()["error"] == {
        "type": "conflict_error",
        "code": "insufficient_inventory",
        "message": response.json()["error"]["message"],
        "param": variant.id,
    }
    assert not PaymentSession.objects.filter(cart_id=carts[3]["id"]).exists()
    assert StockLevel.objects.get(variant=variant).reserved == 3

    # Simulated clock: the three holds reach their TTL.
    StockReservation.objects.filter(variant=variant).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert shop.pay(carts[3]["id"]).status_code == 201
    assert StockReservation.objects.filter(variant=variant, expires_at__gt=timezone.now()).count() == 1


@pytest.mark.django_db
def test_reservation_uses_reservation_ttl(shop, fake_stripe, settings):
    settings.RESERVATION_TTL = timedelta(minutes=3)
    cart = shop.cart((VariantFactory(stock=5), 2))
    before = timezone.now()
    shop.pay(cart["id"])
    reservation = StockReservation.objects.get(cart_id=cart["id"])
    assert reservation.quantity == 2
    assert before + timedelta(minutes=3) <= reservation.expires_at <= timezone.now() + timedelta(minutes=3)


@pytest.mark.django_db
def test_reservation_released_when_cart_changes(shop, fake_stripe):
    variant = VariantFactory(stock=1)
    cart = shop.cart((variant, 1))
    shop.pay(cart["id"])
    assert StockReservation.objects.filter(cart_id=cart["id"]).exists()

    shop.client.post(f"/store/carts/{cart['id']}", {"email": "new@example.com"}, format="json")

    assert not StockReservation.objects.filter(cart_id=cart["id"]).exists()
    assert shop.pay(shop.cart((variant, 1))["id"]).status_code == 201  # the unit is free again


@pytest.mark.django_db
def test_release_expired_reservations_command_and_task(shop, fake_stripe):
    from payments.tasks import release_expired_reservations

    variant = VariantFactory(stock=10)
    expired, live, later = (shop.cart((variant, 1)) for _ in range(3))
    for cart in (expired, live, later):
        shop.pay(cart["id"])
    StockReservation.objects.filter(cart_id=expired["id"]).update(expires_at=timezone.now() - timedelta(minutes=1))

    call_command("release_expired_reservations")

    assert set(StockReservation.objects.values_list("cart_id", flat=True)) == {live["id"], later["id"]}
    assert StockLevel.objects.get(variant=variant).reserved == 2

    StockReservation.objects.filter(cart_id=live["id"]).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert release_expired_reservations.delay().get() == 1  # eager in tests
    assert StockLevel.objects.get(variant=variant).reserved == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_reservation_race_never_exceeds_stock(shop, fake_stripe):
    """10 threads, each with its own cart and DB connection, compete for 3 units."""
    variant = VariantFactory(stock=3)
    carts = [shop.cart((variant, 1)) for _ in range(10)]
    barrier = threading.Barrier(len(carts))
    results: dict[str, int] = {}

    def pay(cart_id: str) -> None:
        client = Client()
        try:
            barrier.wait(timeout=10)
            response = client.post(
                f"/store/carts/{cart_id}/payment-sessions",
                {"provider_id": "stripe"},
                content_type="application/json",
            )
            results[cart_id] = response.status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=pay, args=(cart["id"],)) for cart in carts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(results.values()) == [201] * 3 + [409] * 7
    total = StockReservation.objects.filter(variant=variant).aggregate(total=Sum("quantity"))["total"]
    assert total == 3
    assert StockLevel.objects.get(variant=variant).reserved == 3
    assert PaymentSession.objects.filter(is_active=True).count() == 3


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_payment_session_race_on_one_cart_keeps_one_intent(shop, fake_stripe):
    """Concurrent first calls for the same cart end with one active session; extra intents are canceled."""
    from payments import gateway

    cart = shop.cart((VariantFactory(stock=5), 1))
    barrier = threading.Barrier(4)
    responses: list = []

    def pay() -> None:
        try:
            barrier.wait(timeout=10)
            responses.append(
                Client().post(
                    f"/store/carts/{cart['id']}/payment-sessions",
                    {"provider_id": "stripe"},
                    content_type="application/json",
                )
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=pay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert all(r.status_code in (200, 201) for r in responses), [r.content for r in responses]
    active = PaymentSession.objects.get(cart_id=cart["id"], is_active=True)
    assert {r.json()["payment_session"]["data"]["payment_intent_id"] for r in responses} == {active.payment_intent_id}
    assert gateway.payment_intent_retrieve(id=active.payment_intent_id)["status"] == "requires_payment_method"
    assert StockReservation.objects.get(cart_id=cart["id"]).quantity == 1
