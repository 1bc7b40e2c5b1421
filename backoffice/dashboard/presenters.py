"""What the dashboard page draws: cards, tables, charts grouped in sections, and the formatting of
their figures (rates in tenths of a percent with integer arithmetic, durations, money datasets in
minor units for Chart.js). Pure functions and frozen dataclasses: no queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from common.money import currency_exponent, round_half_up_div


@dataclass(frozen=True)
class Card:
    label: str
    value: str
    note: str = ""
    tone: str = ""  # "", "good", "warn", "bad"


@dataclass(frozen=True)
class Link:
    text: str
    url: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[Any]]  # cells: str, or Link
    numeric: list[int] = field(default_factory=list)  # right-aligned column indexes
    empty: str = "Nothing in this period."


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    type: str  # "bar" | "line" | "doughnut"
    labels: list[str]
    datasets: list[dict[str, Any]]  # {label, data, kind: count|money|percent|seconds, currency?, exponent?, ...}
    stacked: bool = False


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    description: str = ""
    cards: list[Card] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def percent(numerator: int, denominator: int) -> str:
    """ "92.3 %" (tenths, rounded half up; integer arithmetic), or "–" without a denominator."""
    if denominator <= 0:
        return "–"
    permille = round_half_up_div(numerator * 1000, denominator)
    return f"{permille // 10}.{permille % 10} %"


def rate_permille(numerator: int, denominator: int) -> int | None:
    return round_half_up_div(numerator * 1000, denominator) if denominator > 0 else None


def duration(value: timedelta | None) -> str:
    if value is None:
        return "–"
    seconds = value.total_seconds()
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60} s"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def money_dataset(label: str, values: list[int], currency: str, **extra: Any) -> dict[str, Any]:
    return {
        "label": label,
        "data": values,
        "kind": "money",
        "currency": currency,
        "exponent": currency_exponent(currency),
        **extra,
    }


def day_label(day: date) -> str:
    """A chart axis label: "03 Dec"."""
    return day.strftime("%d %b")


def time_left(expires_at: datetime | None, now: datetime) -> str:
    if expires_at is None:
        return "–"
    if expires_at <= now:
        return "expired"
    return duration(expires_at - now)
