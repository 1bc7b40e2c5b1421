"""Move demo rows into the past, after the services wrote them. Dev tooling only.

The demo tools (``devtools.demo_orders``, ``devtools.demo_history``) make every order the
way a real one is made: through the services, now. A demo back office wants weeks of
history, so afterwards each order's rows are dated onto a timeline. This module is the one
place that writes rows outside the services, and all it changes is timestamps: amounts,
statuses, ids and Stripe's objects stay as the services left them.

A :class:`Story` is one order (or a cart without one) and its phases: ``story.mark(at)`` is
called when a phase starts (placed, captured, shipped, refunded, ...), recording the real
moment and the moment on the timeline. :func:`timeline_apply` then moves every timestamp
of the story's rows (order, cart, lines, events, ledger, sessions, attempts, disputes,
webhook inbox, emails: any model of the carts, orders, payments and webhooks apps keyed by
the order, the cart or the PaymentIntent) by the offset of the last phase that began
before it. A timestamp after the moment the timeline is applied (a deadline: a cart's
expiry, an authorization's ``capture_before``) moves with the story's first phase, so it
stays as far from the placement as the services set it. :func:`users_joined_at` dates the demo's
customer accounts before their first order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

TIMELINE_APPS = ("carts", "orders", "payments", "webhooks")


@dataclass
class Story:
    """One order (or a cart without one) and when each of its phases happened on the timeline."""

    placed_at: datetime
    order_id: str | None = None
    cart_id: str = ""
    payment_intent_id: str = ""
    marks: list[tuple[datetime, datetime]] = field(default_factory=list)  # (real moment, timeline moment)

    def mark(self, at: datetime) -> None:
        """A phase starts now; on the timeline it happened ``at``."""
        from django.utils import timezone

        self.marks.append((timezone.now(), at))


def _offset(marks: list[tuple[datetime, datetime]], value: datetime, *, applied_at: datetime) -> datetime:
    if value > applied_at:  # a deadline set during the story: keep its distance from the placement
        real, at = marks[0]
    else:
        real, at = ([(r, a) for r, a in marks if r <= value] or marks[:1])[-1]
    return value - (real - at)


def timeline_apply(stories: Iterable[Story]) -> int:
    """Move every timestamp written for each story onto its timeline; returns the rows changed."""
    from django.apps import apps
    from django.db import models, transaction
    from django.utils import timezone

    from orders.models import Order

    stories = [s for s in stories if s.marks]
    missing = [s.order_id for s in stories if s.order_id and not s.payment_intent_id]
    intents = dict(Order.objects.filter(pk__in=missing).values_list("pk", "payment_intent_id"))
    applied_at = timezone.now()
    watched = [m for label in TIMELINE_APPS for m in apps.get_app_config(label).get_models()]
    moved = 0
    with transaction.atomic():
        for story in stories:
            keys = {
                "order": story.order_id,
                "order_id": story.order_id,
                "cart": story.cart_id,
                "cart_id": story.cart_id,
                "payment_intent_id": story.payment_intent_id or intents.get(story.order_id or ""),
            }
            marks = sorted(story.marks)
            for model in watched:
                stamps = [f.attname for f in model._meta.concrete_fields if isinstance(f, models.DateTimeField)]
                if not stamps:
                    continue
                if model._meta.label == "orders.Order":
                    if not story.order_id:
                        continue
                    rows = model._default_manager.filter(pk=story.order_id)
                elif model._meta.label == "carts.Cart":
                    rows = model._default_manager.filter(pk=story.cart_id)
                else:
                    names = {f.attname for f in model._meta.concrete_fields} | {
                        f.name for f in model._meta.concrete_fields
                    }
                    key = next((k for k in keys if k in names and keys[k]), None)
                    if key is None:
                        continue
                    rows = model._default_manager.filter(**{key: keys[key]})
                for row in rows.values("pk", *stamps):
                    changes = {
                        name: _offset(marks, row[name], applied_at=applied_at)
                        for name in stamps
                        if row[name] is not None
                    }
                    if changes:
                        model._default_manager.filter(pk=row["pk"]).update(**changes)
                        moved += 1
    return moved


def users_joined_at(*, user_ids: Iterable[str], at: datetime) -> int:
    """The accounts joined ``at`` at the latest (before the history they ordered in); returns how many."""
    from django.db.models import F, Value
    from django.db.models.functions import Least

    from customers.models import User

    return User.objects.filter(pk__in=list(user_ids)).update(date_joined=Least(F("date_joined"), Value(at)))
