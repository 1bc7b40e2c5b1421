"""Delete expired Idempotency-Key records (the same work as the hourly Celery task)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from common.idempotency import idempotency_records_purge


class Command(BaseCommand):
    help = "Delete Idempotency-Key records whose expires_at has passed (kept IDEMPOTENCY_KEY_TTL, >= 24 h)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=1000, help="Rows deleted per statement.")

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        deleted = idempotency_records_purge(batch_size=batch_size)
        self.stdout.write(f"Deleted {deleted} expired idempotency key(s).")
