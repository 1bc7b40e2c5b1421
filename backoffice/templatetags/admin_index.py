"""The admin home's sections: the shop's apps first, then Django's, then one "Stripe mirror" entry.

dj-stripe registers about 45 read-only models (``payments/admin.py``); listed one by one they
fill the index between the shop's own sections. ``admin_index_sections`` splits Django's
``app_list`` (already filtered by the staff member's permissions) so ``templates/admin/index.html``
shows them inside one collapsed entry, each still a link to its change list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django import template

register = template.Library()

STRIPE_MIRROR_APP_LABEL = "djstripe"
# The shop's apps, in the order staff use them; any other app of ours follows, then Django's.
SHOP_APP_ORDER = ("orders", "webhooks", "catalog", "carts", "customers", "payments", "common", "storefront")
DJANGO_APP_LABELS = frozenset({"auth", "admin", "contenttypes", "sessions", "sites", "flatpages", "redirects"})


@dataclass(frozen=True)
class IndexSections:
    shop: list[dict[str, Any]] = field(default_factory=list)
    other: list[dict[str, Any]] = field(default_factory=list)
    stripe_mirror: list[dict[str, Any]] = field(default_factory=list)  # the dj-stripe app, when visible

    @property
    def stripe_mirror_models(self) -> int:
        return sum(len(app["models"]) for app in self.stripe_mirror)


def admin_index_sections(*, app_list: Sequence[dict[str, Any]]) -> IndexSections:
    """Split the admin's ``app_list`` into the shop's apps (ordered), Django's, and the Stripe mirror."""
    rank = {label: n for n, label in enumerate(SHOP_APP_ORDER)}
    sections = IndexSections()
    for app in app_list:
        label = app["app_label"]
        if label == STRIPE_MIRROR_APP_LABEL:
            sections.stripe_mirror.append(app)
        elif label in DJANGO_APP_LABELS:
            sections.other.append(app)
        else:
            sections.shop.append(app)
    sections.shop.sort(key=lambda app: rank.get(app["app_label"], len(rank)))  # stable: Django's order otherwise
    return sections


@register.simple_tag
def admin_index(app_list: Sequence[dict[str, Any]]) -> IndexSections:
    """``{% admin_index app_list as sections %}`` in templates/admin/index.html."""
    return admin_index_sections(app_list=app_list)
