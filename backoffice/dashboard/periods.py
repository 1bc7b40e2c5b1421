"""The dashboard's period: whole UTC days, a preset (last 7, 30, 90 days) or any dates up to 366 days."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.utils import timezone

DEFAULT_DAYS = 30
PRESETS = (7, 30, 90)
MAX_DAYS = 366


@dataclass(frozen=True)
class Period:
    first_day: date
    last_day: date  # inclusive
    preset: int | None = None

    @property
    def start(self) -> datetime:
        return datetime(self.first_day.year, self.first_day.month, self.first_day.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive: midnight after the last day."""
        return self.start + timedelta(days=self.length)

    @property
    def length(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=n) for n in range(self.length)]

    def label(self) -> str:
        return f"{self.first_day:%d %b %Y} – {self.last_day:%d %b %Y}"


def period_last_days(days: int, *, today: date | None = None) -> Period:
    today = today or timezone.now().astimezone(UTC).date()
    return Period(first_day=today - timedelta(days=days - 1), last_day=today, preset=days if days in PRESETS else None)


def period_from_query(params: Mapping[str, str], *, today: date | None = None) -> Period:
    """``?days=7|30|90`` or ``?start=YYYY-MM-DD&end=YYYY-MM-DD``; anything invalid gives the default."""
    today = today or timezone.now().astimezone(UTC).date()
    start, end = params.get("start"), params.get("end")
    if start or end:
        try:
            first = date.fromisoformat(start) if start else today - timedelta(days=DEFAULT_DAYS - 1)
            last = date.fromisoformat(end) if end else today
        except ValueError:
            return period_last_days(DEFAULT_DAYS, today=today)
        if first > last:
            first, last = last, first
        if (last - first).days + 1 > MAX_DAYS:
            first = last - timedelta(days=MAX_DAYS - 1)
        return Period(first_day=first, last_day=last)
    try:
        days = int(params.get("days", DEFAULT_DAYS))
    except (TypeError, ValueError):
        days = DEFAULT_DAYS
    return period_last_days(min(max(days, 1), MAX_DAYS), today=today)
