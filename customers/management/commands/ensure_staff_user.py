"""Create (or reset) a staff superuser for the demo and print its login."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from customers.models import User


class Command(BaseCommand):
    help = "Create or reset a staff superuser (demo and local development)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", default="staff@example.com")
        parser.add_argument("--password", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(email=options["email"]).first()
        if user is None:
            user = User.objects.create_superuser(options["email"], options["password"])
        else:
            user.is_staff = user.is_superuser = user.is_active = True
            user.set_password(options["password"])
            user.save()
        self.stdout.write(f"staff user {user.email} ready")
