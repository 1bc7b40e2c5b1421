"""Who did something: the audit vocabulary of order events, ledger rows and incidents.

Shared by ``orders``, ``payments`` and ``webhooks`` (an audit concept, not a payments one).
"""

from __future__ import annotations

from django.db import models


class Actor(models.TextChoices):
    CUSTOMER = "customer"
    STAFF = "staff"
    SYSTEM = "system"
    STRIPE = "stripe"
