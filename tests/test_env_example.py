"""`.env.example` lists every environment variable the settings read (the developers' guide)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READS = re.compile(
    r"""\benv(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]+)["']|os\.environ(?:\.get)?[\(\[]\s*["']([A-Z][A-Z0-9_]+)["']"""
)
LISTED = re.compile(r"^#?\s*([A-Z][A-Z0-9_]+)=", re.M)


def _read_by_settings() -> set[str]:
    names = set()
    for path in (ROOT / "config").rglob("*.py"):
        names |= {a or b for a, b in READS.findall(path.read_text())}
    return names


def test_env_example_lists_every_variable_the_settings_read():
    listed = set(LISTED.findall((ROOT / ".env.example").read_text()))
    read = _read_by_settings()

    assert {
        "DATABASE_URL",
        "STRIPE_API_KEY",
        "DEMO_DJSTRIPE_SYNCDB",
        "DJANGO_EMAIL_FILE_PATH",
    } <= read  # the scan works
    assert sorted(read - listed) == []


def test_env_example_lists_nothing_the_settings_ignore():
    listed = set(LISTED.findall((ROOT / ".env.example").read_text()))

    assert sorted(listed - _read_by_settings()) == []
