"""Staff pages behind the order admin: the money and fulfillment confirmation pages, the dashboard.

Every action is an intermediate page (GET shows the order's money and a form; POST with CSRF
does it) and stays thin: check the permission (403 otherwise), validate the form, call one
service, report the outcome as an admin message and go back to the order. A typed error from
the service (``ApplicationError``: amount out of range, authorization expired, Stripe said
no, dispute open) is an error message, never a 500.

Double submission: the form carries the ledger version the staff member saw; the payment
services derive their idempotency key from it (``order:{id}:capture:v{n}``), so a second POST
of the same form finds the first operation and moves no money.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from backoffice import dashboard, selectors
from backoffice import forms as admin_forms
from common.actors import Actor
from common.errors import ApplicationError
from common.money import format_money
from orders import fulfillment, services
from orders.models import FulfillmentStatus, Order, OrderStatus, PaymentStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActionSpec:
    name: str
    permission: str  # "orders.capture_payment"
    title: str  # "Capture payment"
    verb: str  # button text: "Capture"
    form_class: type[forms.Form]
    danger: bool = False

    def allowed(self, request: HttpRequest) -> bool:
        return request.user.has_perm(self.permission)


ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec("capture", "orders.capture_payment", "Capture payment", "Capture", admin_forms.CaptureForm),
        ActionSpec(
            "cancel",
            "orders.cancel_payment",
            "Cancel authorization",
            "Cancel authorization",
            admin_forms.CancelForm,
            True,
        ),
        ActionSpec("refund", "orders.refund_payment", "Refund payment", "Refund", admin_forms.RefundForm, True),
        ActionSpec("fulfil", "orders.fulfil_order", "Mark fulfilled", "Mark fulfilled", admin_forms.FulfilForm),
        ActionSpec("ship", "orders.fulfil_order", "Mark shipped", "Mark shipped", admin_forms.ShipForm),
        ActionSpec("deliver", "orders.fulfil_order", "Mark delivered", "Mark delivered", admin_forms.DeliverForm),
    )
}
FULFILLMENT_ACTIONS = ("fulfil", "ship", "deliver")
_FULFILLMENT_FROM = {
    "fulfil": FulfillmentStatus.NOT_FULFILLED,
    "ship": FulfillmentStatus.FULFILLED,
    "deliver": FulfillmentStatus.SHIPPED,
}


@dataclass(frozen=True)
class ActionButton:
    name: str
    title: str
    url: str
    enabled: bool
    note: str = ""
    danger: bool = False


def action_state(*, order: Order, money: selectors.OrderMoney, name: str) -> tuple[bool, str]:
    """Whether the action applies to the order now, and why not (shown next to a disabled button)."""
    if name == "capture":
        if order.payment_status != PaymentStatus.AUTHORIZED or money.capturable <= 0:
            return False, ""
        if money.expired:
            return False, "authorization expired"
        return True, ""
    if name == "cancel":
        return (order.payment_status == PaymentStatus.AUTHORIZED and money.capturable > 0), ""
    if name == "refund":
        return (money.refundable > 0), ""
    if order.fulfillment_status != _FULFILLMENT_FROM[name]:
        return False, ""
    if order.status == OrderStatus.CANCELED:
        return False, "order canceled"
    if money.dispute_open:
        return False, "on hold: dispute open"
    if name in ("fulfil", "ship") and not fulfillment.payment_live(order=order):
        return False, "payment not live"
    return True, ""


def action_buttons(*, request: HttpRequest, order: Order, money: selectors.OrderMoney) -> list[ActionButton]:
    """The actions this staff member may take (those without the permission are not shown at all)."""
    buttons = []
    for name, spec in ACTIONS.items():
        if not spec.allowed(request):
            continue
        enabled, note = action_state(order=order, money=money, name=name)
        if not enabled and not note:
            continue  # does not apply in this state; a disabled button is shown only when the reason matters
        buttons.append(
            ActionButton(
                name=name,
                title=spec.title,
                url=reverse(f"admin:orders_order_{name}", args=[quote(order.pk)]),
                enabled=enabled,
                note=note,
                danger=spec.danger,
            )
        )
    return buttons


# --- Performing an action -----------------------------------------------------------------


def _perform(*, name: str, order: Order, form: forms.Form, user_id: str, before: selectors.OrderMoney) -> str:
    """Call the one service of the action; returns the success message. Raises ApplicationError."""
    data: dict[str, Any] = form.cleaned_data
    version = data["ledger_version"]
    money = lambda amount: format_money(amount, order.currency_code)  # noqa: E731
    if name == "capture":
        services.order_payment_capture(
            order_id=order.pk,
            amount=data["amount"],
            actor=Actor.STAFF,
            user_id=user_id,
            reason=data.get("reason") or "",
            expected_version=version,
        )
        rest = before.capturable - data["amount"]
        released = f" The uncaptured {money(rest)} was released." if rest > 0 else ""
        return f"Captured {money(data['amount'])} of order #{order.display_id}.{released}"
    if name == "cancel":
        services.order_payment_cancel(
            order_id=order.pk, actor=Actor.STAFF, user_id=user_id, reason=data["reason"], expected_version=version
        )
        return f"Released the authorization of {money(before.capturable)} on order #{order.display_id}; the order is canceled."
    if name == "refund":
        assert isinstance(form, admin_forms.RefundForm)
        services.order_payment_refund(
            order_id=order.pk,
            amount=data["amount"],
            reason=form.reason_text(),
            refund_reason=form.stripe_reason(),
            actor=Actor.STAFF,
            user_id=user_id,
            expected_version=version,
        )
        return f"Refunded {money(data['amount'])} of order #{order.display_id}."
    reason = data.get("reason") or ""
    if name == "fulfil":
        fulfillment.order_fulfil(order_id=order.pk, actor=Actor.STAFF, user_id=user_id, reason=reason)
        return f"Order #{order.display_id} marked fulfilled."
    if name == "ship":
        fulfillment.order_ship(
            order_id=order.pk,
            carrier=data["carrier"],
            tracking_number=data["tracking_number"],
            tracking_url=data.get("tracking_url") or "",
            actor=Actor.STAFF,
            user_id=user_id,
            reason=reason,
        )
        return f"Order #{order.display_id} marked shipped ({data['carrier']} {data['tracking_number']})."
    if name == "deliver":
        fulfillment.order_deliver(order_id=order.pk, actor=Actor.STAFF, user_id=user_id, reason=reason)
        return f"Order #{order.display_id} marked delivered."
    raise Http404(name)  # pragma: no cover - the URLs only route known names


def _initial(*, name: str, order: Order, money: selectors.OrderMoney) -> dict[str, Any]:
    initial: dict[str, Any] = {"ledger_version": money.version}
    if name == "capture":
        initial["amount"] = admin_forms.amount_input(money.capturable, order.currency_code)
    elif name == "refund":
        initial["amount"] = admin_forms.amount_input(money.refundable, order.currency_code)
    return initial


def order_action_view(request: HttpRequest, object_id: str, *, name: str, model_admin: ModelAdmin) -> HttpResponse:
    spec = ACTIONS.get(name)
    if spec is None:
        raise Http404("No such action.")
    if not spec.allowed(request):
        raise PermissionDenied
    order = Order.objects.filter(pk=unquote(object_id)).first()
    if order is None:
        raise Http404("No such order.")
    order_url = reverse("admin:orders_order_change", args=[quote(order.pk)])
    money = selectors.order_money(order=order)
    if request.method == "POST":
        form = spec.form_class(request.POST, currency=order.currency_code)  # type: ignore[call-arg]  # _OrderActionForm takes it
        if form.is_valid():
            user_id = str(request.user.pk)
            repeated = form.cleaned_data["ledger_version"] != money.version and name not in FULFILLMENT_ACTIONS
            try:
                message = _perform(name=name, order=order, form=form, user_id=user_id, before=money)
            except ApplicationError as exc:
                logger.info(
                    "admin.order_action_refused action=%s order_id=%s user_id=%s code=%s",
                    name,
                    order.pk,
                    user_id,
                    exc.code,
                )
                messages.error(request, f"{spec.title} refused: {exc.message}")
            except Exception:  # noqa: BLE001 - staff get a message, never a 500; the traceback is logged
                logger.exception("admin.order_action_failed action=%s order_id=%s user_id=%s", name, order.pk, user_id)
                messages.error(
                    request,
                    f"{spec.title} failed unexpectedly. Check the payment ledger below before trying again.",
                )
            else:
                if repeated:
                    messages.warning(request, "This form was already submitted: nothing more was done.")
                else:
                    messages.success(request, message)
            return HttpResponseRedirect(order_url)
    else:
        form = spec.form_class(  # type: ignore[call-arg]  # _OrderActionForm takes the currency
            initial=_initial(name=name, order=order, money=money), currency=order.currency_code
        )
    enabled, note = action_state(order=order, money=money, name=name)
    if not enabled and not note:
        note = "it does not apply to this order in its current state"
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Order._meta,
        "title": f"{spec.title}: order #{order.display_id}",
        "order": order,
        "money": money,
        "form": form,
        "action": spec,
        "enabled": enabled,
        "note": note,
        "order_url": order_url,
        "amounts": {
            "total": format_money(order.total, order.currency_code),
            "authorized": format_money(money.totals.authorized, order.currency_code),
            "captured": format_money(money.totals.captured, order.currency_code),
            "voided": format_money(money.totals.voided, order.currency_code),
            "refunded": format_money(money.totals.refunded, order.currency_code),
            "capturable": format_money(money.capturable, order.currency_code),
            "refundable": format_money(money.refundable, order.currency_code),
        },
        "now": timezone.now(),
    }
    return TemplateResponse(request, "admin/orders/order/action_confirm.html", context)


def make_action_view(name: str, model_admin: ModelAdmin) -> Callable[..., HttpResponse]:
    def view(request: HttpRequest, object_id: str) -> HttpResponse:
        return order_action_view(request, object_id, name=name, model_admin=model_admin)

    view.__name__ = f"order_{name}_view"
    return view


# --- Dashboard ----------------------------------------------------------------------------


def dashboard_view(request: HttpRequest, *, model_admin: ModelAdmin) -> HttpResponse:
    if not request.user.has_perm("orders.view_order"):
        raise PermissionDenied
    period = dashboard.period_from_query(request.GET)
    data = dashboard.dashboard_build(period=period)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Order._meta,
        "title": "Checkout analytics",
        "period": period,
        "presets": dashboard.PRESETS,
        "data": data,
        "chart_data": dashboard.chart_payload(data),
    }
    return TemplateResponse(request, "admin/orders/dashboard.html", context)
