"""``python manage.py webhook_replay evt_... [evt_...]`` / ``--all-failed``: re-queue inbox events (staff)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.errors import ApplicationError
from webhooks import selectors, services


class Command(BaseCommand):
    help = "Replay failed (dead-lettered) or processed webhook events by Stripe event id or inbox id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("event_ids", nargs="*", help="evt_... (Stripe) or whevt_... (inbox) ids")
        parser.add_argument("--all-failed", action="store_true", help="Replay every dead-lettered event.")

    def handle(self, *args: Any, **options: Any) -> None:
        ids = list(options["event_ids"])
        if options["all_failed"]:
            ids += list(selectors.webhook_events_dead_lettered().order_by("received_at").values_list("pk", flat=True))
        if not ids:
            raise CommandError("Give event ids or --all-failed.")
        failures = 0
        for event_id in ids:
            try:
                row = services.webhook_event_replay(event_id=event_id, actor_user_id="cli")
            except ApplicationError as exc:
                failures += 1
                self.stderr.write(f"{event_id}: {exc.message}")
            else:
                self.stdout.write(f"queued {row.stripe_event_id} ({row.type})")
        if failures:
            raise SystemExit(1)
