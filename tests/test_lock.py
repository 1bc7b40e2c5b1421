"""The lock files agree with the direct pins (scripts/lock.sh rebuilds them) and hash everything."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]+\])?==([^\s;\\]+)", re.M)


def _pins(path: Path) -> dict[str, str]:
    return {name.lower().replace("_", "-"): version for name, version in PIN.findall(path.read_text())}


@pytest.mark.parametrize(
    ("direct", "lock"),
    [("requirements.txt", "requirements.lock"), ("requirements-dev.txt", "requirements-dev.lock")],
)
def test_every_direct_pin_is_locked_at_its_version(direct, lock):
    wanted = _pins(ROOT / direct)
    if direct == "requirements-dev.txt":
        wanted |= _pins(ROOT / "requirements.txt")  # -r requirements.txt
    locked = _pins(ROOT / lock)

    assert {name: locked.get(name) for name in wanted} == wanted, f"run scripts/lock.sh after editing {direct}"


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock"])
def test_every_locked_package_is_pinned_with_a_hash(lock):
    entries = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / lock).read_text().strip())
    packages = [entry for entry in entries if not entry.startswith("#")]

    assert len(packages) > 20
    assert all(PIN.match(entry) and "--hash=sha256:" in entry for entry in packages), [
        entry.split()[0] for entry in packages if "--hash=sha256:" not in entry
    ]


def test_production_lock_holds_no_development_tool():
    locked = _pins(ROOT / "requirements.lock")
    assert not {"localstripe", "pytest", "playwright", "ruff", "mypy"} & set(locked)
