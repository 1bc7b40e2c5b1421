"""Staff back-office fixtures: staff users with chosen permissions, real orders placed against localstripe.

``placed_order`` goes through the real flow: a cart built with the cart services, a PaymentIntent
created and confirmed in localstripe (manual capture), then ``orders.services.order_place``
(what ``POST /store/carts/{id}/complete`` calls). No mocks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client

from common.actors import Actor
from orders import services as order_services
from orders.models import Order
from tests.factories import UserFactory
from tests.orders.conftest import make_cart, pay_cart, shop_for

MONEY_PERMISSIONS = ("capture_payment", "refund_payment", "cancel_payment", "fulfil_order")


def grant(user: Any, *codenames: str) -> Any:
    """Give ``user`` these permissions (``orders.capture_payment`` or plain codenames of orders.Order)."""
    for name in codenames:
        app_label, _, codename = name.rpartition(".")
        perms = Permission.objects.filter(codename=codename)
        if app_label:
            perms = perms.filter(content_type__app_label=app_label)
        perm = perms.get()
        user.user_permissions.add(perm)
    return user


@pytest.fixture
def staff_factory(db: Any) -> Callable[..., Any]:
    """A staff (not superuser) account with exactly the given permissions."""

    def make(*codenames: str) -> Any:
        user = UserFactory(is_staff=True)
        return grant(user, "orders.view_order", *codenames)

    return make


@pytest.fixture
def staff(staff_factory: Callable[..., Any]) -> Any:
    """Staff with every back-office permission (view orders and webhooks, all money actions, replay)."""
    return staff_factory(
        *(f"orders.{name}" for name in MONEY_PERMISSIONS), "webhooks.view_webhookevent", "webhooks.change_webhookevent"
    )


@pytest.fixture
def staff_client(staff: Any) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def place_order(localstripe: Any, *, currency: str = "usd", quantity: int = 2, capture_method: str = "manual") -> Order:
    shop = shop_for(currency)
    variant = shop.variant(stock=50)
    cart_id = make_cart(shop, [(variant, quantity)])
    paid = pay_cart(localstripe, cart_id, capture_method=capture_method)
    order, created = order_services.order_place(
        cart_id=cart_id, payment_intent_id=paid.payment_intent_id, actor=Actor.CUSTOMER
    )
    assert created
    return order


@pytest.fixture
def placed_order(localstripe: Any) -> Order:
    return place_order(localstripe)


def messages_of(response: Any) -> list[tuple[str, str]]:
    """(level tag, text) of the messages a response carried (works after a redirect was followed)."""
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def action_url(order: Order, action: str) -> str:
    """The URL the admin renders (Django quotes ids: ``_`` becomes ``_5F``)."""
    return f"/admin/orders/order/{quote(order.pk)}/{action}/"


def order_url(order: Order) -> str:
    return f"/admin/orders/order/{quote(order.pk)}/change/"


def ledger_version(client: Client, order: Order, action: str) -> int:
    """The hidden ledger version the confirmation page renders (what a browser would post back)."""
    page = client.get(action_url(order, action))
    assert page.status_code == 200
    match = re.search(rb'name="ledger_version" value="(\d+)"', page.content)
    assert match, "the confirmation form carries the ledger version"
    return int(match.group(1))
