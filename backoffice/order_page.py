"""The read-only order page (``templates/admin/orders/order/change_form.html``): its context.

Money is formatted in the order's currency, addresses per country, the timeline newest first
with who acted; the actions are those this staff member may take (``backoffice.views``). The
reads are ``backoffice.selectors.order_page`` (a fixed number of queries).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from backoffice import selectors, views
from common.addresses import address_lines
from common.money import format_money
from orders.models import Order
from payments.models import LedgerEntryStatus

_MONEY_KEYS = ("amount", "total", "released", "captured", "refunded")
_AMOUNT_KINDS = ("authorized", "captured", "voided", "refunded")


def address_block(address: dict[str, Any] | None) -> dict[str, Any]:
    """An order's stored address as the page shows it: its lines laid out for its country, and the phone."""
    if not isinstance(address, dict):
        return {"lines": [], "phone": ""}
    return {"lines": address_lines(address=address), "phone": str(address.get("phone") or "").strip()}


def event_details(payload: dict[str, Any], currency: str) -> list[str]:
    """A few readable lines for one timeline entry (money formatted in the order's currency)."""
    if not isinstance(payload, dict):
        return [str(payload)]
    details: list[str] = []
    handled = {"field", "from", "to", "amounts_before", "amounts_after", "level", "currency_code"}
    if "from" in payload and "to" in payload:
        details.append(f"{payload['from']} → {payload['to']}".replace("_", " "))
    raw_before, raw_after = payload.get("amounts_before"), payload.get("amounts_after")
    before: dict[str, Any] = raw_before if isinstance(raw_before, dict) else {}
    after: dict[str, Any] | None = raw_after if isinstance(raw_after, dict) else None
    if after is not None:
        for kind in _AMOUNT_KINDS:
            old, new = int(before.get(kind) or 0), int(after.get(kind) or 0)
            if old != new:
                details.append(f"{kind}: {format_money(old, currency)} → {format_money(new, currency)}")
    for key, value in payload.items():
        if key in handled or value in (None, "", [], {}):
            continue
        if key in _MONEY_KEYS and isinstance(value, int) and not isinstance(value, bool):
            value = format_money(value, payload.get("currency_code") or currency)
        text = str(value)
        details.append(f"{key.replace('_', ' ')}: {text[:160]}")
    return details


def order_page_context(*, request: HttpRequest, order: Order) -> dict[str, Any]:
    page = selectors.order_page(order=order)
    money = page.money
    cur = order.currency_code

    def fm(amount: int) -> str:
        return format_money(amount, cur)

    totals_rows = [
        ("Subtotal", fm(order.subtotal)),
        (f"Shipping ({order.shipping_name})" if order.shipping_name else "Shipping", fm(order.shipping_total)),
        (
            f"Tax {order.tax_rate_bps / 100:g} %{' (included)' if order.tax_inclusive else ''}",
            fm(order.tax_total),
        ),
        ("Total", fm(order.total)),
    ]
    payment_rows = [
        ("Authorized", fm(money.totals.authorized)),
        ("Captured", fm(money.totals.captured)),
        ("Released (voided)", fm(money.totals.voided)),
        ("Refunded", fm(money.totals.refunded)),
    ]
    if money.totals.refund_pending:
        payment_rows.append(("Refund pending", fm(money.totals.refund_pending)))
    if money.totals.disputed:
        payment_rows.append(("Withdrawn by disputes", fm(money.totals.disputed)))
    payment_rows += [("Capturable now", fm(money.capturable)), ("Refundable now", fm(money.refundable))]

    def who(row: Any) -> str:
        return selectors.actor_display(actor=row.actor, user_id=row.actor_user_id, names=page.user_names)

    return {
        "ck_order": order,
        "ck_lines": [
            {
                "line": line,
                "unit_price": fm(line.unit_price),
                "subtotal": fm(line.subtotal),
                "tax_total": fm(line.tax_total),
                "total": fm(line.total),
            }
            for line in page.lines
        ],
        "ck_totals": totals_rows,
        "ck_payment": payment_rows,
        "ck_money": money,
        "ck_shipping_address": address_block(order.shipping_address),
        "ck_billing_address": address_block(order.billing_address),
        "ck_shipment": page.shipment,
        "ck_ledger": [
            {
                "entry": entry,
                "amount": fm(entry.amount)
                if entry.currency_code == cur
                else format_money(entry.amount, entry.currency_code),
                "by": who(entry),
            }
            for entry in page.ledger_entries
        ],
        "ck_pending": [
            {"entry": entry, "amount": fm(entry.amount), "by": who(entry)}
            for entry in page.ledger_entries
            if entry.status == LedgerEntryStatus.PENDING and not entry.stripe_object_id
        ],
        "ck_disputes": [
            {"dispute": d, "amount": format_money(d.amount, d.currency_code or cur)} for d in page.disputes
        ],
        "ck_events": [
            {
                "event": event,
                "title": event.type.replace("_", " ").capitalize(),
                "by": who(event),
                "details": event_details(event.payload, cur),
            }
            for event in reversed(page.events)
        ],
        "ck_actions": views.action_buttons(request=request, order=order, money=money),
        "ck_webhooks_url": reverse("admin:webhooks_webhookevent_changelist") + f"?q={order.payment_intent_id}",
    }
