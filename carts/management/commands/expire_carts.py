"""``python manage.py expire_carts``: mark active carts past ``expires_at`` as expired.

The same service runs every 10 minutes as the Celery beat task ``carts.tasks.expire_carts``;
this command is for operators (backfills, a beat outage). Batched, constant memory, idempotent.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from carts import services


class Command(BaseCommand):
    help = "Mark active carts whose expires_at has passed as expired (batched, idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="Carts per transaction (default 500).")

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = options["batch_size"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        now = timezone.now()
        self.stdout.write(f"Expiring carts with expires_at <= {now.isoformat()} in batches of {batch_size}.")

        def progress(batch: int, total: int) -> None:
            self.stdout.write(f"  expired {batch} carts (total {total})")

        total = services.carts_expire(now=now, batch_size=batch_size, on_batch=progress)
        self.stdout.write(self.style.SUCCESS(f"Done: {total} carts expired."))
