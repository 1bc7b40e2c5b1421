"""The dashboard's webhook inbox section: backlog, dead letters and processing lag.

The figures are the webhooks app's own reads (``webhooks.selectors_dashboard``); the back office
only lays them out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.urls import reverse

from backoffice.dashboard.periods import Period
from backoffice.dashboard.presenters import Card, Chart, Link, Section, Table, day_label, duration
from webhooks import selectors_dashboard


def webhook_section(*, period: Period, now: datetime) -> tuple[dict[str, Any], Section]:
    """The raw figures (``DashboardData.extra["webhooks"]``) and the section drawn from them."""
    backlog = selectors_dashboard.webhook_backlog(now=now)
    stats = selectors_dashboard.webhook_period(start=period.start, end=period.end)
    by_day = {row.day: row for row in selectors_dashboard.webhook_by_day(start=period.start, end=period.end)}
    days = period.days()
    inbox_url = reverse("admin:webhooks_webhookevent_changelist")
    section = Section(
        key="webhooks",
        title="Stripe webhooks",
        description="Backlog: events stored and not yet processed. Lag: time from storing an event to processing it.",
        cards=[
            Card(
                "Webhook backlog",
                str(backlog.pending),
                f"oldest waiting {duration(backlog.oldest_pending_age)}" if backlog.pending else "nothing waiting",
                "warn" if backlog.pending else "good",
            ),
            Card(
                "Dead letters",
                str(backlog.dead_letters),
                "failed every attempt: replay from the inbox" if backlog.dead_letters else "none",
                "bad" if backlog.dead_letters else "good",
            ),
            Card("Processing lag (mean)", duration(stats.lag_avg), f"max {duration(stats.lag_max)}"),
            Card("Events received", str(stats.received), f"{stats.processed} processed, {stats.failed} failed"),
        ],
        charts=[
            Chart(
                id="webhooks",
                title="Events per day and mean processing lag",
                type="bar",
                labels=[day_label(day) for day in days],
                datasets=[
                    {
                        "label": "Received",
                        "data": [by_day[d].received if d in by_day else 0 for d in days],
                        "kind": "count",
                    },
                    {
                        "label": "Dead-lettered",
                        "data": [by_day[d].failed if d in by_day else 0 for d in days],
                        "kind": "count",
                        "color": "bad",
                    },
                    {
                        "label": "Mean lag (s)",
                        "data": [
                            round(lag.total_seconds(), 1) if d in by_day and (lag := by_day[d].lag_avg) else None
                            for d in days
                        ],
                        "kind": "seconds",
                        "type": "line",
                        "yAxisID": "y2",
                        "color": "warn",
                    },
                ],
            )
        ],
        tables=[
            Table(
                headers=["Measure", "Value"],
                rows=[
                    ["Waiting or processing now", Link(str(backlog.pending), f"{inbox_url}?inbox=pending")],
                    ["Oldest waiting", duration(backlog.oldest_pending_age)],
                    ["Dead letters now", Link(str(backlog.dead_letters), f"{inbox_url}?inbox=dead")],
                    ["Received in the period", str(stats.received)],
                    ["Processed", str(stats.processed)],
                    ["Dead-lettered", str(stats.failed)],
                    ["Mean processing lag", duration(stats.lag_avg)],
                    ["Max processing lag", duration(stats.lag_max)],
                ],
                numeric=[1],
            )
        ],
    )
    return {"backlog": backlog, "period": stats, "by_day": list(by_day.values())}, section
