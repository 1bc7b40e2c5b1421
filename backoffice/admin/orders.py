"""The staff back office for orders (issue 6).

Orders are read-only here: every change goes through a service, from an intermediate
confirmation page (``orders/views.py``) guarded by a custom permission of ``Order``:
``capture_payment``, ``cancel_payment``, ``refund_payment``, ``fulfil_order``. Staff without
one do not see its button, and get 403 if they post its form anyway.

The list annotates each row in SQL (captured and refunded from the ledger, authorization
expiry, open dispute), so it is one query per page whatever is shown.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from backoffice import selectors, views
from backoffice.order_page import order_page_context
from common.money import format_money
from orders import expiry
from orders.models import CheckoutIncident, Order, PaymentStatus

_BADGE_TONES = {
    # payment
    "not_paid": "muted",
    "requires_action": "warn",
    "authorized": "info",
    "partially_captured": "good",
    "captured": "good",
    "partially_refunded": "warn",
    "refunded": "muted",
    "canceled": "muted",
    # order
    "pending": "info",
    "completed": "good",
    "archived": "muted",
    # fulfillment
    "not_fulfilled": "warn",
    "fulfilled": "info",
    "shipped": "info",
    "delivered": "good",
}


def badge(value: str, label: str | None = None, tone: str | None = None) -> str:
    return format_html(
        '<span class="ck-badge ck-{}">{}</span>',
        tone or _BADGE_TONES.get(value, "muted"),
        label or value.replace("_", " "),
    )


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


# --- List filters ---------------------------------------------------------------------------


class DisputeOpenFilter(admin.SimpleListFilter):
    title = "dispute"
    parameter_name = "dispute"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Dispute open"), ("none", "No open dispute")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Order]) -> QuerySet[Order]:
        if self.value() == "open":
            return queryset.filter(selectors.orders_with_open_dispute_filter(open_dispute=True))
        if self.value() == "none":
            return queryset.filter(selectors.orders_with_open_dispute_filter(open_dispute=False))
        return queryset


class AuthorizationFilter(admin.SimpleListFilter):
    title = "authorization"
    parameter_name = "authorization"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("expiring", "Expiring within 24 h"),
            ("expired", "Expired, not captured"),
            ("awaiting", "Awaiting capture"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Order]) -> QuerySet[Order]:
        now = timezone.now()
        awaiting = queryset.filter(payment_status=PaymentStatus.AUTHORIZED)
        if self.value() == "expiring":
            return awaiting.filter(
                authorization_expires_at__gt=now,  # type: ignore[misc]  # annotated by orders_awaiting_capture
                authorization_expires_at__lte=now + expiry.EXPIRY_WARNING_WINDOW,
            )
        if self.value() == "expired":
            return awaiting.filter(authorization_expires_at__lte=now)  # type: ignore[misc]  # annotated by orders_awaiting_capture
        if self.value() == "awaiting":
            return awaiting
        return queryset


# --- Order ------------------------------------------------------------------------------------


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = [
        "order_number",
        "placed",
        "email",
        "payment_badge",
        "fulfillment_badge",
        "total_money",
        "paid_money",
        "authorization_column",
    ]
    list_display_links = ["order_number"]
    list_filter = [
        "status",
        "payment_status",
        "fulfillment_status",
        AuthorizationFilter,
        DisputeOpenFilter,
        ("region", admin.RelatedOnlyFieldListFilter),
        "currency_code",
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["=id", "email", "=payment_intent_id", "=cart__id"]
    search_help_text = "Order id, #number, email, PaymentIntent id (pi_…) or cart id."
    date_hierarchy = "created_at"
    list_per_page = 50
    show_full_result_count = False
    fieldsets = [
        (
            None,
            {
                "fields": [
                    ("id", "display_id", "created_at"),
                    ("status", "payment_status", "fulfillment_status"),
                    ("email", "customer", "cart"),
                    ("region", "currency_code", "shipping_name"),
                ]
            },
        ),
        ("Payment", {"fields": [("payment_intent_id", "capture_method"), ("authorized_at", "capture_before")]}),
    ]
    change_form_template = "admin/orders/order/change_form.html"
    change_list_template = "admin/orders/order/change_list.html"

    class Media:
        css = {"all": ["orders/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        return selectors.order_admin_queryset()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Order], search_term: str
    ) -> tuple[QuerySet[Order], bool]:
        term = search_term.strip()
        number = term.lstrip("#")
        if number.isdigit() and len(number) < 12:  # "#1042" or "1042": the human order number
            by_number = queryset.filter(display_id=int(number))
            if term.startswith("#"):
                return by_number, False
            results, duplicates = super().get_search_results(request, queryset, search_term)
            return (results | by_number), duplicates
        return super().get_search_results(request, queryset, search_term)

    # --- columns

    @admin.display(description="Order", ordering="display_id")
    def order_number(self, obj: Order) -> str:
        return f"#{obj.display_id}"

    @admin.display(description="Placed (UTC)", ordering="created_at")
    def placed(self, obj: Order) -> str:
        return format_html('<span style="white-space:nowrap">{}</span>', obj.created_at.strftime("%Y-%m-%d %H:%M"))

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Order) -> str:
        return badge(obj.status)

    @admin.display(description="Payment", ordering="payment_status")
    def payment_badge(self, obj: Order) -> str:
        payment = badge(obj.payment_status)
        if obj.status == "canceled" and obj.payment_status != "canceled":
            payment = format_html("{} {}", payment, badge("", "order canceled", "muted"))
        if getattr(obj, "has_open_dispute", False):
            return format_html("{} {}", payment, badge("", "dispute", "bad"))
        return payment

    @admin.display(description="Fulfillment", ordering="fulfillment_status")
    def fulfillment_badge(self, obj: Order) -> str:
        return badge(obj.fulfillment_status)

    @admin.display(description="Total", ordering="total")
    def total_money(self, obj: Order) -> str:
        return format_html('<span class="ck-money">{}</span>', format_money(obj.total, obj.currency_code))

    @admin.display(description="Captured", ordering="amount_captured")
    def paid_money(self, obj: Order) -> str:
        captured = getattr(obj, "amount_captured", 0) or 0
        refunded = getattr(obj, "amount_refunded", 0) or 0
        if not captured and not refunded:
            return "–"
        if not refunded:
            return format_html('<span class="ck-money">{}</span>', format_money(captured, obj.currency_code))
        return format_html(
            '<span class="ck-money">{}</span><br><span class="ck-money ck-refunded">−{} refunded</span>',
            format_money(captured, obj.currency_code),
            format_money(refunded, obj.currency_code),
        )

    @admin.display(description="Authorization", ordering="authorization_expires_at")
    def authorization_column(self, obj: Order) -> str:
        if obj.payment_status != PaymentStatus.AUTHORIZED:
            return "–"
        expires = getattr(obj, "authorization_expires_at", None)
        if expires is None:
            return badge("", "awaiting capture", "info")
        left = expires - timezone.now()
        if left.total_seconds() <= 0:
            return badge("", "expired", "bad")
        hours = int(left.total_seconds() // 3600)
        if left <= expiry.EXPIRY_WARNING_WINDOW:
            return badge("", f"{hours} h left" if hours else "< 1 h left", "bad")
        return badge("", f"{hours // 24} d {hours % 24} h left", "info")

    # --- the order page and its actions

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        urls = [
            path("dashboard/", view(self.dashboard), name="orders_order_dashboard"),
            *[
                path(
                    f"<path:object_id>/{name}/",
                    view(views.make_action_view(name, self)),
                    name=f"orders_order_{name}",
                )
                for name in views.ACTIONS
            ],
        ]
        return urls + super().get_urls()

    def dashboard(self, request: HttpRequest) -> HttpResponse:
        return views.dashboard_view(request, model_admin=self)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        order = Order.objects.filter(pk=unquote(object_id)).first()
        context = dict(extra_context or {})
        if order is not None:
            context.update(order_page_context(request=request, order=order))
        return super().change_view(request, object_id, form_url, extra_context=context)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = dict(extra_context or {})
        context["dashboard_url"] = reverse("admin:orders_order_dashboard")
        context["expiring_count"] = expiry.orders_authorization_expiring().count()
        return super().changelist_view(request, extra_context=context)


@admin.register(CheckoutIncident)
class CheckoutIncidentAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "kind",
        "resolution",
        "actor",
        "cart_id",
        "payment_intent_id",
        "variant_id",
        "amount_money",
        "detail",
    ]
    list_filter = ["kind", "resolution", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["=cart_id", "=payment_intent_id", "=variant_id"]

    @admin.display(description="Amount", ordering="amount")
    def amount_money(self, obj: CheckoutIncident) -> str:
        return format_money(obj.amount, obj.currency_code)
