"""Order emails: rendering only (sending and the send-once guards live in services).

Every email has a subject (``orders/email/<kind>_subject.txt``), a text part (``<kind>.txt``)
and an HTML part (``<kind>.html``, extending ``orders/email/base.html``). Amounts are
formatted with the currency's exponent (``common.money.format_money``); the ship-to block is
laid out per country (``common.addresses.address_lines``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from common.addresses import address_lines
from common.money import format_money
from orders.models import Order, OrderNotification, OrderNotificationKind


def _lines(*, order: Order) -> list[dict[str, Any]]:
    """The order's lines; ``total`` is the line before tax (subtotal), so the lines add up to the
    order's subtotal in a tax-exclusive region (tax is added below them); in a tax-inclusive
    region the line subtotal already contains its tax."""
    return [
        {
            "title": line.title,
            "sku": line.sku,
            "quantity": line.quantity,
            "unit_price": format_money(line.unit_price, order.currency_code),
            "total": format_money(line.subtotal, order.currency_code),
        }
        for line in order.lines.all()
    ]


def _message(*, order: Order, template: str, context: dict[str, Any]) -> EmailMultiAlternatives:
    ship_to = address_lines(address=order.shipping_address) if order.shipping_address else []
    context = {"order": order, "ship_to": ship_to, **context}
    subject = render_to_string(f"orders/email/{template}_subject.txt", context).strip()
    body = render_to_string(f"orders/email/{template}.txt", context)
    html = render_to_string(f"orders/email/{template}.html", context)
    message = EmailMultiAlternatives(
        subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[order.email]
    )
    message.attach_alternative(html, "text/html")
    return message


def order_confirmation_email(*, order: Order) -> EmailMultiAlternatives:
    context = {
        "lines": _lines(order=order),
        "subtotal": format_money(order.subtotal, order.currency_code),
        "shipping_total": format_money(order.shipping_total, order.currency_code),
        "tax_total": format_money(order.tax_total, order.currency_code),
        "total": format_money(order.total, order.currency_code),
    }
    return _message(order=order, template="confirmation", context=context)


def _shipped_context(*, order: Order, payload: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "carrier": payload.get("carrier", ""),
        "tracking_number": payload.get("tracking_number", ""),
        "tracking_url": payload.get("tracking_url", ""),
        "lines": _lines(order=order),
    }


def _canceled_context(*, order: Order, payload: Mapping[str, Any]) -> dict[str, Any]:
    released, refunded = int(payload.get("released", 0)), int(payload.get("refunded", 0))
    charged = int(payload.get("captured", 0)) - refunded
    return {
        "released": format_money(released, order.currency_code) if released else "",
        "refunded": format_money(refunded, order.currency_code) if refunded else "",
        "charged": format_money(charged, order.currency_code) if charged > 0 else "",
    }


def _refunded_context(*, order: Order, payload: Mapping[str, Any]) -> dict[str, Any]:
    currency = str(payload.get("currency_code") or order.currency_code)
    return {"amount": format_money(int(payload["amount"]), currency)}


def _no_context(*, order: Order, payload: Mapping[str, Any]) -> dict[str, Any]:
    return {}


_CONTEXTS: dict[str, Callable[..., dict[str, Any]]] = {
    OrderNotificationKind.SHIPPED: _shipped_context,
    OrderNotificationKind.DELIVERED: _no_context,
    OrderNotificationKind.CANCELED: _canceled_context,
    OrderNotificationKind.REFUNDED: _refunded_context,
}


def order_notification_email(*, order: Order, notification: OrderNotification) -> EmailMultiAlternatives:
    """The shipped / delivered / canceled / refunded email of one notification row."""
    context = _CONTEXTS[notification.kind](order=order, payload=notification.payload)
    return _message(order=order, template=notification.kind, context=context)
