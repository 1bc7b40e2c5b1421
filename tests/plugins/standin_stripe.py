"""Test-side control of the stand-in's Stripe layer (devtools/standin/stripe.py): events and
their delivery, disputes, refund failures, expiry, dashboard actions.

A mixin of ``tests.plugins.localstripe.LocalStripe``; it uses ``self.request(...)``.
Every method answers the stand-in's JSON (the resulting Stripe object for actions).
"""

from __future__ import annotations

import urllib.parse
from typing import Any


class StripeControl:
    def request(self, method: str, path: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        raise NotImplementedError  # provided by LocalStripe

    # --- Webhook delivery ----------------------------------------------------------------

    def webhooks_delivery(
        self,
        *,
        mode: str = "immediate",
        delay: float = 0.0,
        duplicate: bool = False,
        drop: int = 0,
        types: list[str] | None = None,
    ) -> dict[str, Any]:
        """Set how events reach webhooks: ``immediate`` or ``hold`` (queued until released),
        ``delay`` seconds before each delivery, every event ``duplicate``d, the next ``drop``
        events (of ``types`` if given) never delivered."""
        data: dict[str, Any] = {"mode": mode, "delay": delay, "duplicate": duplicate, "drop": drop}
        if types is not None:
            data["types"] = types
        return self.request("POST", "/_control/webhooks/delivery", data)

    def webhooks_held(self) -> list[dict[str, Any]]:
        """The held events, oldest first: ``{"id", "type", "object_id", "created"}``."""
        return self.request("GET", "/_control/webhooks/held")["data"]

    def webhooks_release(
        self, *, order: str = "fifo", seed: int = 0, duplicate: bool = False, drop: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Deliver the held events one after the other (``fifo``, ``reverse`` or ``shuffle``d with
        ``seed``), skipping the ids in ``drop``; answers once every POST completed, per event:
        ``{"id", "type", "object_id", "dropped", "status_codes", "deliveries"}``."""
        data = {"order": order, "seed": seed, "duplicate": duplicate, "drop": drop or [], "wait": True}
        return self.request("POST", "/_control/webhooks/release", data)["data"]

    def webhooks_drop_held(self) -> dict[str, Any]:
        return self.request("DELETE", "/_control/webhooks/held")

    def webhooks_drain(self) -> dict[str, Any]:
        """Wait until every in-flight delivery (immediate or delayed) has completed."""
        return self.request("POST", "/_control/webhooks/drain", {})

    # --- Things that happen at Stripe ---------------------------------------------------

    def refund_fail(self, refund_id: str, *, failure_reason: str = "expired_or_canceled_card") -> dict[str, Any]:
        return self.request("POST", f"/_control/refunds/{refund_id}/fail", {"failure_reason": failure_reason})

    def dispute_open(
        self, *, payment_intent: str, amount: int | None = None, reason: str = "fraudulent"
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"payment_intent": payment_intent, "reason": reason}
        if amount is not None:
            data["amount"] = amount
        return self.request("POST", "/_control/disputes", data)

    def dispute_update(self, dispute_id: str, *, status: str = "under_review") -> dict[str, Any]:
        return self.request("POST", f"/_control/disputes/{dispute_id}/update", {"status": status})

    def dispute_close(self, dispute_id: str, *, outcome: str) -> dict[str, Any]:
        return self.request("POST", f"/_control/disputes/{dispute_id}/close", {"outcome": outcome})

    def authorization_expire(self, payment_intent_id: str) -> dict[str, Any]:
        return self.request("POST", f"/_control/payment_intents/{payment_intent_id}/expire", {})

    def dashboard_capture(self, payment_intent_id: str, *, amount: int | None = None) -> dict[str, Any]:
        data = {} if amount is None else {"amount_to_capture": amount}
        return self.request("POST", f"/_control/dashboard/payment_intents/{payment_intent_id}/capture", data)

    def dashboard_refund(
        self, payment_intent_id: str, *, amount: int | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if amount is not None:
            data["amount"] = amount
        if reason is not None:
            data["reason"] = reason
        return self.request("POST", f"/_control/dashboard/payment_intents/{payment_intent_id}/refund", data)

    def dashboard_cancel(self, payment_intent_id: str) -> dict[str, Any]:
        return self.request("POST", f"/_control/dashboard/payment_intents/{payment_intent_id}/cancel", {})

    # --- Events ----------------------------------------------------------------------------

    def events(self, *, type: str | None = None, object_id: str | None = None) -> list[dict[str, Any]]:  # noqa: A002
        """Events from ``GET /v1/events`` (newest first), of ``type``, about ``object_id``."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        if type is not None:
            params["type"] = type
        while True:
            page = self.request("GET", "/v1/events?" + urllib.parse.urlencode(params))
            found.extend(page["data"])
            if not page.get("has_more") or not page["data"]:
                break
            params["starting_after"] = page["data"][-1]["id"]
        if object_id is not None:
            found = [e for e in found if (e.get("data") or {}).get("object", {}).get("id") == object_id]
        return found

    def _reset_stripe(self) -> None:
        """Called after every test: delivery back to normal, nothing held."""
        self.request("POST", "/_control/reset-stripe", {})
