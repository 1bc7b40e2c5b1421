"""Money-safety gaps, against real localstripe and PostgreSQL.

* Gap A: automatic capture, paid but out of stock at completion: the refunded payment's
  session is retired, so the shopper can pay again with a fresh PaymentIntent.
* Gap C: staff cancel an order before it is fulfilled: the units go back on hand, once.

(Gap B, a second PaymentIntent of a completed cart, is in tests/webhooks/test_orphan_payment.py.)
"""

from __future__ import annotations

from typing import Any

import pytest

from catalog.models import StockLevel
from orders import services
from orders.models import CheckoutIncident, Order, OrderEvent
from payments import gateway, ledger
from payments.models import LedgerEntry, PaymentSession, PaymentSessionStatus
from tests.helpers import VISA
from tests.orders.conftest import complete, make_cart, pay_cart

pytestmark = pytest.mark.django_db


def _payment_session(client: Any, cart_id: str) -> Any:
    return client.post(f"/store/carts/{cart_id}/payment-sessions", {"provider_id": "stripe"}, format="json")


def _confirm(localstripe: Any, payment_intent_id: str) -> dict[str, Any]:
    """What Stripe.js does in the browser: put a card on the intent and confirm it."""
    method = localstripe.card_payment_method(VISA)
    localstripe.request("POST", f"/v1/payment_intents/{payment_intent_id}", {"payment_method": method})
    return localstripe.request("POST", f"/v1/payment_intents/{payment_intent_id}/confirm", {})


# --- Gap A -----------------------------------------------------------------------------------


def test_automatic_capture_out_of_stock_refunds_and_the_shopper_can_pay_again(api_client, localstripe, shop, settings):
    settings.STRIPE_CAPTURE_METHOD = "automatic"
    variant = shop.variant(stock=1)
    cart_id = make_cart(shop, [(variant, 1)])
    first = _payment_session(api_client, cart_id)
    assert first.status_code == 201, first.content
    first_pi = first.json()["payment_session"]["data"]["payment_intent_id"]
    total = first.json()["payment_session"]["amount"]
    assert _confirm(localstripe, first_pi)["status"] == "succeeded"  # money taken
    StockLevel.objects.filter(variant=variant).update(on_hand=0)  # sold in the shop meanwhile

    response = complete(api_client, cart_id, first_pi)

    assert response.status_code == 409
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (
        "insufficient_inventory",
        variant.id,
    )
    charge = gateway.payment_intent_retrieve(id=first_pi)["latest_charge"]
    assert charge["amount_refunded"] == total
    incident = CheckoutIncident.objects.get()
    assert (incident.kind, incident.resolution, incident.amount) == (
        "insufficient_inventory",
        "payment_refunded",
        total,
    )
    retired = PaymentSession.objects.get(payment_intent_id=first_pi)
    assert (retired.is_active, retired.status) == (False, PaymentSessionStatus.CANCELED)
    assert not Order.objects.exists()

    StockLevel.objects.filter(variant=variant).update(on_hand=1)  # restocked
    second = _payment_session(api_client, cart_id)

    assert second.status_code == 201, second.content  # a new PaymentIntent, not the refunded one
    second_pi = second.json()["payment_session"]["data"]["payment_intent_id"]
    assert second_pi != first_pi
    assert second.json()["payment_session"]["amount"] == total
    assert PaymentSession.objects.get(cart_id=cart_id, is_active=True).payment_intent_id == second_pi
    assert _confirm(localstripe, second_pi)["status"] == "succeeded"

    placed = complete(api_client, cart_id, second_pi)

    assert placed.status_code == 201, placed.content
    order = Order.objects.get()
    assert (order.payment_intent_id, order.payment_status, order.total) == (second_pi, "captured", total)
    assert StockLevel.objects.get(variant=variant).on_hand == 0
    totals = ledger.ledger_totals(payment_intent_id=second_pi)
    assert (totals.captured, totals.refunded) == (total, 0)
    # the refunded intent stays refunded and can never place an order
    again = complete(api_client, cart_id, first_pi)
    assert again.status_code == 200 and again.json()["order"]["id"] == order.id  # the cart's one order
    assert LedgerEntry.objects.filter(payment_intent_id=first_pi, kind="refund").get().amount == total


def test_refunded_intent_of_an_active_cart_is_payment_canceled_not_stale(api_client, localstripe, shop):
    """A retry with the released intent, before a new session exists: 402 payment_canceled (and a new session works)."""
    variant = shop.variant(stock=1)
    cart_id = make_cart(shop, [(variant, 1)])
    paid = pay_cart(localstripe, cart_id, reserve=False, capture_method="automatic")
    StockLevel.objects.filter(variant=variant).update(on_hand=0)
    assert complete(api_client, cart_id, paid.payment_intent_id).status_code == 409

    again = complete(api_client, cart_id, paid.payment_intent_id)

    assert again.status_code == 402 and again.json()["error"]["code"] == "payment_canceled"
    assert PaymentSession.objects.filter(cart_id=cart_id, is_active=True).count() == 0


def test_payment_session_release_is_idempotent(localstripe, paid_cart):
    from payments import services as payment_services

    released = payment_services.payment_session_release(payment_intent_id=paid_cart.payment_intent_id)
    again = payment_services.payment_session_release(payment_intent_id=paid_cart.payment_intent_id)

    assert (released.is_active, released.status) == (again.is_active, again.status) == (False, "canceled")
    assert payment_services.payment_session_release(payment_intent_id="pi_unknown") is None


# --- Gap C -----------------------------------------------------------------------------------


@pytest.fixture
def two_variant_order(localstripe, shop):
    tracked = shop.variant(stock=10)
    untracked = shop.variant(stock=4, manage_inventory=False)
    paid = pay_cart(localstripe, make_cart(shop, [(tracked, 3), (untracked, 2)]))
    order, created = services.order_place(
        cart_id=paid.cart_id, payment_intent_id=paid.payment_intent_id, actor="customer"
    )
    assert created
    assert StockLevel.objects.get(variant=tracked).on_hand == 7
    return order, tracked, untracked


def _on_hand(variant: Any) -> int:
    return StockLevel.objects.get(variant=variant).on_hand


def test_staff_cancel_before_fulfillment_restocks_tracked_variants_once(two_variant_order):
    order, tracked, untracked = two_variant_order
    version = ledger.ledger_totals(payment_intent_id=order.payment_intent_id).entries

    canceled = services.order_payment_cancel(
        order_id=order.id, actor="staff", user_id="cus_staff", reason="customer asked", expected_version=version
    )

    assert (canceled.status, canceled.payment_status, canceled.fulfillment_status) == (
        "canceled",
        "canceled",
        "canceled",
    )
    assert gateway.payment_intent_retrieve(id=order.payment_intent_id)["status"] == "canceled"
    assert _on_hand(tracked) == 10  # the 3 units are back
    assert _on_hand(untracked) == 4  # not managed: never taken, never given back
    event = OrderEvent.objects.get(order=order, type="stock_restocked")
    assert (event.actor, event.actor_user_id) == ("staff", "cus_staff")
    assert event.payload == {"reason": "customer asked", "quantities": {tracked.id: 3}, "units": 3}
    # a double-submitted form (same version) and a later cancel change nothing
    services.order_payment_cancel(order_id=order.id, actor="staff", expected_version=version)
    with pytest.raises(services.InvalidTransition):
        services.order_payment_cancel(order_id=order.id, actor="staff")
    assert _on_hand(tracked) == 10
    assert OrderEvent.objects.filter(order=order, type="stock_restocked").count() == 1
    # the restock sits between the payment and status events of the cancel
    types = list(OrderEvent.objects.filter(order=order).order_by("created_at", "id").values_list("type", flat=True))
    assert types[-4:] == ["payment_status_changed", "stock_restocked", "status_changed", "fulfillment_status_changed"]


def test_staff_cancel_after_packing_does_not_restock(two_variant_order):
    order, tracked, _ = two_variant_order
    services.order_transition(order_id=order.id, field="fulfillment_status", target="fulfilled", actor="staff")

    canceled = services.order_payment_cancel(order_id=order.id, actor="staff", reason="fraud")

    assert (canceled.status, canceled.fulfillment_status) == ("canceled", "canceled")
    assert _on_hand(tracked) == 7  # packed goods: staff put them back by hand
    assert not OrderEvent.objects.filter(order=order, type="stock_restocked").exists()


def test_restock_keeps_other_carts_reservations(two_variant_order, shop):
    """Restocking refreshes ``reserved`` from the live reservations and makes the units sellable again."""
    from django.conf import settings

    from catalog import services as catalog_services
    from common.errors import InsufficientInventory

    order, tracked, _ = two_variant_order
    other_cart = make_cart(shop, [(tracked, 7)])
    catalog_services.stock_reserve(cart_id=other_cart, quantities={tracked.id: 7}, ttl=settings.RESERVATION_TTL)
    with pytest.raises(InsufficientInventory):  # 7 on hand, all held by the other cart
        catalog_services.stock_reserve(
            cart_id=make_cart(shop, [(tracked, 1)]), quantities={tracked.id: 1}, ttl=settings.RESERVATION_TTL
        )

    services.order_payment_cancel(order_id=order.id, actor="staff")

    stock = StockLevel.objects.get(variant=tracked)
    assert (stock.on_hand, stock.reserved) == (10, 7)
    catalog_services.stock_reserve(
        cart_id=make_cart(shop, [(tracked, 3)]), quantities={tracked.id: 3}, ttl=settings.RESERVATION_TTL
    )
