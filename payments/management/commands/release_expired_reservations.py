from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from catalog import services as catalog_services


class Command(BaseCommand):
    help = "Release stock reservations whose expires_at has passed (what the beat task does every minute)."

    def handle(self, *args: Any, **options: Any) -> None:
        released = catalog_services.stock_reservations_expire()
        self.stdout.write(f"released {released} expired reservation(s)")
