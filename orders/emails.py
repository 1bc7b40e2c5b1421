"""Order emails: rendering only (sending and the send-once guard live in services)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from common.money import format_money
from orders.models import Order


def order_confirmation_email(*, order: Order) -> EmailMultiAlternatives:
    lines = [
        {
            "title": line.title,
            "sku": line.sku,
            "quantity": line.quantity,
            "unit_price": format_money(line.unit_price, order.currency_code),
            "total": format_money(line.total, order.currency_code),
        }
        for line in order.lines.all()
    ]
    context = {
        "order": order,
        "lines": lines,
        "subtotal": format_money(order.subtotal, order.currency_code),
        "shipping_total": format_money(order.shipping_total, order.currency_code),
        "tax_total": format_money(order.tax_total, order.currency_code),
        "total": format_money(order.total, order.currency_code),
    }
    subject = render_to_string("orders/email/confirmation_subject.txt", context).strip()
    body = render_to_string("orders/email/confirmation.txt", context)
    html = render_to_string("orders/email/confirmation.html", context)
    message = EmailMultiAlternatives(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[order.email])
    message.attach_alternative(html, "text/html")
    return message
