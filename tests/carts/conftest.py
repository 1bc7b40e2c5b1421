from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone


class Clock:
    """A settable ``django.utils.timezone.now`` (what services, auto_now fields and factories call)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC))
    monkeypatch.setattr(timezone, "now", fake)
    return fake
