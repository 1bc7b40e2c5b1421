"""Cart expiry: sliding expires_at, 410 on writes, the expire_carts command and Celery task."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from carts import services
from carts.models import Cart, CartStatus
from carts.tasks import expire_carts
from catalog.models import StockLevel, StockReservation
from tests.factories import CartFactory, LineItemFactory, ShippingOptionFactory, VariantFactory
from tests.helpers import ADDRESS_US, assert_error, create_cart

pytestmark = pytest.mark.django_db


def test_expires_at_is_last_activity_plus_ttl(api_client, region_usd, clock, settings):
    settings.CART_TTL = timedelta(hours=2)
    variant = VariantFactory()
    start = clock.now
    cart = create_cart(api_client, region_usd.id)
    assert Cart.objects.get(pk=cart["id"]).expires_at == start + timedelta(hours=2)

    later = clock.advance(timedelta(minutes=90))
    api_client.post(f"/store/carts/{cart['id']}/line-items", {"variant_id": variant.id, "quantity": 1}, format="json")
    assert Cart.objects.get(pk=cart["id"]).expires_at == later + timedelta(hours=2)

    # reading is not activity
    clock.advance(timedelta(minutes=10))
    body = api_client.get(f"/store/carts/{cart['id']}").json()["cart"]
    assert body["expires_at"] == (later + timedelta(hours=2)).isoformat().replace("+00:00", "Z")


def test_default_cart_ttl_is_seven_days():
    assert django_settings.CART_TTL == timedelta(days=7)


def _expired_cart(api_client, region, clock, settings):
    settings.CART_TTL = timedelta(hours=1)
    variant = VariantFactory()
    option = ShippingOptionFactory(region=region)
    cart = create_cart(api_client, region.id, [(variant.id, 1)])
    clock.advance(timedelta(hours=1))  # expires_at == now: expired
    return cart, variant, option


def test_expired_cart_rejects_every_write_with_410(api_client, region_usd, clock, settings):
    cart, variant, option = _expired_cart(api_client, region_usd, clock, settings)
    cart_id, item_id = cart["id"], cart["items"][0]["id"]
    writes = [
        ("post", f"/store/carts/{cart_id}", {"email": "late@example.com"}),
        ("post", f"/store/carts/{cart_id}", {"shipping_address": ADDRESS_US}),
        ("post", f"/store/carts/{cart_id}/line-items", {"variant_id": variant.id, "quantity": 1}),
        ("post", f"/store/carts/{cart_id}/line-items/{item_id}", {"quantity": 3}),
        ("delete", f"/store/carts/{cart_id}/line-items/{item_id}", None),
        ("post", f"/store/carts/{cart_id}/shipping-methods", {"option_id": option.id}),
    ]
    for method, path, body in writes:
        response = getattr(api_client, method)(path, body, format="json")
        error = assert_error(response, 410, "cart_expired")
        assert error["type"] == "invalid_request_error"
        assert error["message"] == "This cart expired on 2026-12-01T11:00:00Z."
    # nothing changed, and the cart still reads (status reported as expired even before the sweep)
    body = api_client.get(f"/store/carts/{cart_id}").json()["cart"]
    assert body["status"] == "expired"
    assert body["email"] is None
    assert body["items"][0]["quantity"] == 1
    assert Cart.objects.get(pk=cart_id).status == CartStatus.ACTIVE


def test_cart_one_second_before_expiry_is_writable(api_client, region_usd, clock, settings):
    settings.CART_TTL = timedelta(hours=1)
    cart = create_cart(api_client, region_usd.id)
    clock.advance(timedelta(minutes=59, seconds=59))
    response = api_client.post(f"/store/carts/{cart['id']}", {"email": "ok@example.com"}, format="json")
    assert response.status_code == 200
    assert response.json()["cart"]["status"] == "active"


def test_swept_cart_rejects_writes_even_if_not_past_expiry(api_client, region_usd):
    cart = create_cart(api_client, region_usd.id)
    Cart.objects.filter(pk=cart["id"]).update(status=CartStatus.EXPIRED)
    assert_error(
        api_client.post(f"/store/carts/{cart['id']}", {"email": "x@example.com"}, format="json"), 410, "cart_expired"
    )


def test_expired_cart_of_another_customer_is_404_not_410(api_client, region_usd, clock, settings):
    from tests.factories import UserFactory

    owner, other = UserFactory(), UserFactory()
    api_client.force_authenticate(owner)
    cart, _, _ = _expired_cart(api_client, region_usd, clock, settings)
    api_client.force_authenticate(other)
    assert_error(
        api_client.post(f"/store/carts/{cart['id']}", {"email": "x@example.com"}, format="json"), 404, "not_found"
    )


def test_completed_and_completing_carts_reject_writes(api_client, region_usd):
    cart = create_cart(api_client, region_usd.id)
    Cart.objects.filter(pk=cart["id"]).update(status=CartStatus.COMPLETING)
    assert_error(
        api_client.post(f"/store/carts/{cart['id']}", {"email": "x@example.com"}, format="json"), 409, "cart_completing"
    )
    Cart.objects.filter(pk=cart["id"]).update(status=CartStatus.COMPLETED)
    assert_error(
        api_client.post(f"/store/carts/{cart['id']}", {"email": "x@example.com"}, format="json"), 400, "cart_completed"
    )


# --- the sweep: command, task, service ----------------------------------------------------------


def _carts_for_sweep(clock, region):
    past = clock.now - timedelta(seconds=1)
    future = clock.now + timedelta(days=1)
    expired = [CartFactory(region=region, expires_at=past) for _ in range(5)]
    fresh = [CartFactory(region=region, expires_at=future) for _ in range(2)]
    completing = CartFactory(region=region, expires_at=past, status=CartStatus.COMPLETING)
    completed = CartFactory(region=region, expires_at=past, status=CartStatus.COMPLETED)
    return expired, fresh, completing, completed


def test_expire_carts_command_batches_prints_progress_and_is_idempotent(region_usd, clock):
    expired, fresh, completing, completed = _carts_for_sweep(clock, region_usd)
    out = io.StringIO()
    call_command("expire_carts", "--batch-size", "2", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Expiring carts with expires_at <= 2026-12-01T10:00:00")
    assert lines[1:] == [
        "  expired 2 carts (total 2)",
        "  expired 2 carts (total 4)",
        "  expired 1 carts (total 5)",
        "Done: 5 carts expired.",
    ]
    status = dict(Cart.objects.values_list("pk", "status"))
    assert {status[c.pk] for c in expired} == {CartStatus.EXPIRED}
    assert {status[c.pk] for c in fresh} == {CartStatus.ACTIVE}
    assert status[completing.pk] == CartStatus.COMPLETING
    assert status[completed.pk] == CartStatus.COMPLETED
    assert Cart.objects.count() == 9  # expired carts are kept

    out = io.StringIO()
    call_command("expire_carts", stdout=out)
    assert out.getvalue().splitlines()[-1] == "Done: 0 carts expired."
    assert Cart.objects.filter(status=CartStatus.EXPIRED).count() == 5


def test_expire_carts_command_rejects_bad_batch_size():
    with pytest.raises(CommandError):
        call_command("expire_carts", "--batch-size", "0")


def test_expire_carts_task_calls_the_service(region_usd, clock):
    expired, fresh, _, _ = _carts_for_sweep(clock, region_usd)
    assert expire_carts.name == django_settings.CELERY_BEAT_SCHEDULE["expire-carts"]["task"]
    result = expire_carts.apply(kwargs={"batch_size": 3})
    assert result.get() == 5
    assert Cart.objects.filter(status=CartStatus.EXPIRED).count() == 5
    assert expire_carts.apply().get() == 0


def test_expire_carts_releases_reservations(region_usd, clock):
    variant = VariantFactory(stock=10)
    cart = CartFactory(region=region_usd, expires_at=clock.now - timedelta(seconds=1))
    LineItemFactory(cart=cart, variant=variant, quantity=3)
    StockReservation.objects.create(
        variant=variant, cart_id=cart.id, quantity=3, expires_at=clock.now + timedelta(minutes=5)
    )
    StockLevel.objects.filter(variant=variant).update(reserved=3)
    assert services.carts_expire() == 1
    assert not StockReservation.objects.filter(cart_id=cart.id).exists()
    assert StockLevel.objects.get(variant=variant).reserved == 0


def test_expire_carts_queries_do_not_grow_with_the_number_of_carts(region_usd, clock):
    """Constant work per batch: 3 carts or 30 carts in one batch cost the same queries."""
    past = clock.now - timedelta(seconds=1)

    def sweep_queries(n: int) -> int:
        for _ in range(n):
            cart = CartFactory(region=region_usd, expires_at=past)
            StockReservation.objects.create(
                variant=VariantFactory(), cart_id=cart.id, quantity=1, expires_at=clock.now + timedelta(minutes=5)
            )
        with CaptureQueriesContext(connection) as ctx:
            assert services.carts_expire(batch_size=500) == n
        return len(ctx.captured_queries)

    assert sweep_queries(3) == sweep_queries(30)
