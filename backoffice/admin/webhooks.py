"""The webhook inbox for staff: every stored Stripe event, read-only, with replay for dead letters.

Nothing here writes a row directly: a replay (the bulk action on the list, or the button on an
event's page, POST + CSRF) calls ``webhooks.services.webhook_event_replay``, which puts a
failed (dead-lettered) or processed event back in the queue. Replaying needs the
``webhooks.change_webhookevent`` permission; everything else is view-only.

The inbox's backlog and lag on the analytics dashboard: ``backoffice/dashboard/inbox.py``.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from backoffice.dashboard.presenters import duration
from common.errors import ApplicationError
from webhooks import selectors_dashboard, services
from webhooks.models import WebhookEvent, WebhookEventStatus

_STATUS_TONES: dict[str, str] = {
    WebhookEventStatus.RECEIVED: "info",
    WebhookEventStatus.PROCESSING: "warn",
    WebhookEventStatus.PROCESSED: "good",
    WebhookEventStatus.FAILED: "bad",
}
REPLAYABLE = (WebhookEventStatus.FAILED, WebhookEventStatus.PROCESSED)


class DeadLetterFilter(admin.SimpleListFilter):
    title = "inbox"
    parameter_name = "inbox"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("dead", "Dead letters (failed)"),
            ("pending", "Waiting or processing"),
            ("retrying", "Failed an attempt, retry scheduled"),
            ("replayed", "Replayed by staff"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> QuerySet[WebhookEvent]:
        value = self.value()
        if value == "dead":
            return queryset.filter(status=WebhookEventStatus.FAILED)
        if value == "pending":
            return queryset.filter(status__in=selectors_dashboard.PENDING)
        if value == "retrying":
            return queryset.filter(status=WebhookEventStatus.RECEIVED, attempts__gt=0).exclude(last_error="")
        if value == "replayed":
            return queryset.filter(replayed_at__isnull=False)
        return queryset


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    """Read-only inbox. Status changes only through webhooks.services (replay action below)."""

    list_display = [
        "stripe_event_id",
        "type",
        "status_badge",
        "attempts",
        "error_excerpt",
        "payment_intent_id",
        "received",
        "lag",
    ]
    list_filter = [DeadLetterFilter, "status", "type", "livemode", ("received_at", admin.DateFieldListFilter)]
    search_fields = ["=stripe_event_id", "=id", "=object_id", "=payment_intent_id"]
    search_help_text = "Stripe event id (evt_…), our id (whevt_…), object id or PaymentIntent id."
    date_hierarchy = "received_at"
    actions = ["replay"]
    list_per_page = 50
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": [("stripe_event_id", "id"), ("type", "livemode", "api_version"), ("status", "attempts")]}),
        ("Object", {"fields": [("object_id", "payment_intent_id", "order_link")]}),
        (
            "Timing",
            {
                "fields": [
                    ("stripe_created_at", "received_at"),
                    ("processing_started_at", "next_attempt_at"),
                    ("processed_at", "failed_at", "replayed_at"),
                ]
            },
        ),
        ("Error", {"fields": ["error_block"]}),
        ("Payload (as received; client secrets redacted)", {"fields": ["payload_block"]}),
    ]
    readonly_fields = [
        *(field.name for field in WebhookEvent._meta.fields),
        "order_link",
        "error_block",
        "payload_block",
    ]
    change_form_template = "admin/webhooks/webhookevent/change_form.html"

    class Media:
        css = {"all": ["orders/admin.css"]}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: WebhookEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: WebhookEvent | None = None) -> bool:
        return False

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks.change_webhookevent")

    # --- columns and read-only fields

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: WebhookEvent) -> str:
        return format_html('<span class="ck-badge ck-{}">{}</span>', _STATUS_TONES.get(obj.status, "muted"), obj.status)

    @admin.display(description="Last error")
    def error_excerpt(self, obj: WebhookEvent) -> str:
        if not obj.last_error or obj.status == WebhookEventStatus.PROCESSED:
            return ""
        text = obj.last_error.splitlines()[0] if obj.last_error else ""
        return format_html(
            '<span title="{}">{}</span>', obj.last_error[:1000], text[:90] + ("…" if len(text) > 90 else "")
        )

    @admin.display(description="Received (UTC)", ordering="received_at")
    def received(self, obj: WebhookEvent) -> str:
        return format_html('<span style="white-space:nowrap">{}</span>', obj.received_at.strftime("%Y-%m-%d %H:%M:%S"))

    @admin.display(description="Lag")
    def lag(self, obj: WebhookEvent) -> str:
        if obj.processed_at is None or obj.received_at is None:
            return "–"
        return duration(obj.processed_at - obj.received_at)

    @admin.display(description="Order")
    def order_link(self, obj: WebhookEvent) -> str:
        if not obj.payment_intent_id:
            return "–"
        url = reverse("admin:orders_order_changelist") + f"?q={obj.payment_intent_id}"
        return format_html('<a href="{}">Orders paid by {}</a>', url, obj.payment_intent_id)

    @admin.display(description="Last error")
    def error_block(self, obj: WebhookEvent) -> str:
        if not obj.last_error:
            return "–"
        return format_html('<pre class="ck-mono" style="white-space:pre-wrap;margin:0">{}</pre>', obj.last_error)

    @admin.display(description="Payload")
    def payload_block(self, obj: WebhookEvent) -> str:
        try:  # rows stored before redaction existed may still hold a client secret: never show it
            text = json.dumps(services.secrets_redact(json.loads(obj.payload)), indent=2, sort_keys=True)
        except ValueError:
            text = obj.payload
        return format_html(
            '<pre class="ck-mono" style="white-space:pre-wrap;max-height:480px;overflow:auto;margin:0">{}</pre>', text
        )

    # --- replay

    @admin.action(description="Replay selected events (failed or processed)", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        replayed = 0
        for event in queryset.order_by("stripe_created_at", "received_at"):
            try:
                services.webhook_event_replay(event_id=event.id, actor_user_id=str(request.user.pk))
            except ApplicationError as exc:
                self.message_user(request, f"{event.stripe_event_id}: {exc.message}", level=messages.WARNING)
            else:
                replayed += 1
        self.message_user(request, f"{replayed} event(s) queued for processing.")

    def get_urls(self) -> list[URLPattern]:
        urls = [
            path(
                "<path:object_id>/replay/",
                self.admin_site.admin_view(self.replay_view),
                name="webhooks_webhookevent_replay",
            )
        ]
        return urls + super().get_urls()

    def replay_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_replay_permission(request):
            raise PermissionDenied
        event = WebhookEvent.objects.filter(pk=unquote(object_id)).first()
        if event is None:
            raise Http404("No such webhook event.")
        try:
            services.webhook_event_replay(event_id=event.id, actor_user_id=str(request.user.pk))
        except ApplicationError as exc:
            self.message_user(request, f"Replay refused: {exc.message}", level=messages.ERROR)
        else:
            self.message_user(request, f"{event.stripe_event_id} queued for processing again.", level=messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:webhooks_webhookevent_change", args=[quote(event.pk)]))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = dict(extra_context or {})
        event = WebhookEvent.objects.filter(pk=unquote(object_id)).only("status").first()
        context["can_replay"] = bool(event and event.status in REPLAYABLE and self.has_replay_permission(request))
        if event is not None:
            context["replay_url"] = reverse("admin:webhooks_webhookevent_replay", args=[object_id])
        return super().change_view(request, object_id, form_url, extra_context=context)
