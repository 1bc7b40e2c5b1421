"""Test-side control of the stand-in's HTTP layer (devtools/standin/http.py): faults, request log.

A mixin of ``tests.plugins.localstripe.LocalStripe``; it uses ``self.request(...)``.
"""

from __future__ import annotations


class HttpControl:
    def _reset_http(self) -> None:
        """Called after every test: no fault armed, request log emptied."""
