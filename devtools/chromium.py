"""Debian's headless Chromium as Playwright launches it, for ``devtools.screenshots`` and the browser tests.

Chromium comes from Debian (``apt-get install -y chromium``; ``.ci/run`` installs it); Playwright
drives it through ``executable_path``: no browser download.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_launch(playwright: Any) -> Any:
    """A headless Chromium from a started ``sync_playwright()``; the caller closes it."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
