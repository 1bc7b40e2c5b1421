"""Admin of payments.

dj-stripe's admin: every dj-stripe model stays visible but read-only (no add, change or
delete, no bulk actions that write). Those rows only mirror Stripe: an edit here would
change nothing at Stripe and mislead staff. Stripe objects change through our services
(capture, refund) or the Stripe dashboard; dj-stripe's rows follow via ``gateway.mirror``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

# --- dj-stripe: read-only ------------------------------------------------------------------

# Actions that only read from Stripe into the mirror are kept; anything else is dropped.
_DJSTRIPE_SAFE_ACTIONS = frozenset({"_resync_instances", "_sync_all_instances"})


def _djstripe_read_only(model_admin: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    class ReadOnlyStripeAdmin(model_admin):  # type: ignore[valid-type,misc]
        def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
            return False

        def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
            return False

        def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
            return False

        def get_actions(self, request: HttpRequest) -> dict[str, Any]:
            actions = super().get_actions(request)
            return {name: action for name, action in actions.items() if name in _DJSTRIPE_SAFE_ACTIONS}

    ReadOnlyStripeAdmin.__name__ = ReadOnlyStripeAdmin.__qualname__ = f"ReadOnly{model_admin.__name__}"
    return ReadOnlyStripeAdmin


def djstripe_admin_make_read_only(site: admin.AdminSite = admin.site) -> int:
    """Re-register every dj-stripe ModelAdmin on ``site`` as read-only; returns how many."""
    registered = [
        (model, model_admin) for model, model_admin in site._registry.items() if model._meta.app_label == "djstripe"
    ]
    for model, model_admin in registered:
        site.unregister(model)
        site.register(model, _djstripe_read_only(type(model_admin)))
    return len(registered)


djstripe_admin_make_read_only()
