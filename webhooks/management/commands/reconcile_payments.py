"""``python manage.py reconcile_payments``: repair payment states that webhooks did not (yet) deliver.

Compares recent payment sessions with Stripe (webhooks.reconciliation) and prints one line
per fix. Idempotent and safe while webhooks flow; a second run prints "nothing to fix".
Exit status 1 when a PaymentIntent needs staff attention.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from webhooks import reconciliation


class Command(BaseCommand):
    help = "Compare recent payment sessions with Stripe and repair orders/payments that lag behind."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--window-hours", type=int, default=None, help="Look at sessions created this many hours back."
        )
        parser.add_argument(
            "--grace-seconds",
            type=int,
            default=None,
            help="Leave sessions younger than this alone (in-flight checkouts).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        window = timedelta(hours=options["window_hours"]) if options["window_hours"] is not None else None
        grace = timedelta(seconds=options["grace_seconds"]) if options["grace_seconds"] is not None else None
        report = reconciliation.payments_reconcile(window=window, grace=grace)
        for fix in report.fixes:
            self.stdout.write(f"fixed: {fix.describe()}")
        for payment_intent_id, message in report.errors:
            self.stderr.write(f"needs attention: {payment_intent_id} {message}")
        summary = f"checked {report.checked} payment session(s), fixed {len(report.fixes)}, errors {len(report.errors)}"
        if not report.fixes and not report.errors:
            summary += ": nothing to fix"
        self.stdout.write(summary)
        if report.errors:
            raise SystemExit(1)
