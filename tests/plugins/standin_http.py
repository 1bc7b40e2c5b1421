"""Test-side control of the stand-in's HTTP layer (devtools/standin/http.py): faults, request log.

A mixin of ``tests.plugins.localstripe.LocalStripe``; it uses ``self.request(...)``.
Paths are regular expressions matched with ``re.search`` against the request path
(``"^/v1/refunds$"``). docs/localstripe.md, "Faults and the control API", describes the routes.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlencode

FaultStatus = Literal[500, 502, 503, 429, 402, 409, "reset", "timeout"]


class HttpControl:
    def request(self, method: str, path: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        raise NotImplementedError  # provided by LocalStripe

    def fault(
        self,
        *,
        method: str = "POST",
        path: str,
        status: FaultStatus | int | str = 500,
        when: Literal["before", "after"] = "before",
        count: int = 1,
        latency: float = 0.0,
        idempotency_key: str | None = None,
        param: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> str:
        """Arm a fault for the next ``count`` requests matching; returns its id (``fault_...``).

        ``when="before"``: the request is not executed; ``"after"``: it is executed (and its
        answer stored under its idempotency key), then the client gets the fault instead.
        ``status="reset"`` closes the connection unanswered; ``"timeout"`` answers normally
        ``latency`` seconds late (60 when 0). ``method="*"`` matches any method.
        """
        data: dict[str, Any] = {
            "method": method,
            "path": path,
            "status": status,
            "when": when,
            "count": count,
            "latency": latency,
        }
        optional = {"idempotency_key": idempotency_key, "param": param, "body": body}
        data.update({name: value for name, value in optional.items() if value is not None})
        return str(self.request("POST", "/_control/faults", data)["id"])

    def faults(self) -> list[dict[str, Any]]:
        """Every rule armed since the last clear: ``count`` left to fire, ``fired`` so far."""
        return list(self.request("GET", "/_control/faults")["data"])

    def faults_clear(self) -> None:
        """Disarm every fault (a request held by an injected delay is dropped)."""
        self.request("DELETE", "/_control/faults")

    def requests_log(self, *, path: str | None = None, method: str | None = None) -> list[dict[str, Any]]:
        """The ``/v1/`` requests received, oldest first: ``method, path, idempotency_key, params,
        status`` (``None`` for a reset or a request still running), ``replayed, fault, executed``."""
        query = {name: value for name, value in (("path", path), ("method", method)) if value}
        suffix = f"?{urlencode(query)}" if query else ""
        return list(self.request("GET", f"/_control/requests{suffix}")["data"])

    def requests_clear(self) -> None:
        self.request("DELETE", "/_control/requests")

    def executed(self, *, path: str, method: str = "POST") -> int:
        """How many matching requests localstripe actually executed (not replayed, not refused before)."""
        return sum(1 for entry in self.requests_log(path=path, method=method) if entry["executed"])

    def _reset_http(self) -> None:
        """Called after every test: no fault armed, request log emptied."""
        self.faults_clear()
        self.requests_clear()
