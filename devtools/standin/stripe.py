"""Stripe-shaped objects on top of localstripe, the events Stripe sends for them, and control
actions for what happens at Stripe without us asking (disputes, refund failures, expiring
authorizations, a person in the dashboard).

``install(app)`` monkeypatches localstripe's classes (this runs in the launcher process only;
product code never imports localstripe) and adds routes:

* ``GET /v1/disputes/{id}``, ``GET /v1/disputes?payment_intent=|charge=`` (Stripe's API);
* ``/_control/...`` (no API key): see docs/localstripe.md, "The stand-in's control API".

Event emission and webhook delivery live in ``devtools.standin.events``.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError
from localstripe.resources import Charge, Invoice, List, PaymentIntent, Refund, StripeObject, store

from devtools.standin import clock, events

logger = logging.getLogger("aiohttp.access")

AUTHORIZATION_VALIDITY = 7 * 24 * 3600  # online card authorizations: capture within 7 days
DISPUTE_EVIDENCE_WINDOW = 7 * 24 * 3600
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation", "requires_action")
DISPUTE_REASONS = (
    "bank_cannot_process",
    "check_returned",
    "credit_not_processed",
    "customer_initiated",
    "debit_not_authorized",
    "duplicate",
    "fraudulent",
    "general",
    "incorrect_account_details",
    "insufficient_funds",
    "product_not_received",
    "product_unacceptable",
    "subscription_canceled",
    "unrecognized",
)
DISPUTE_OPEN_STATUSES = ("warning_needs_response", "needs_response", "warning_under_review", "under_review")
DISPUTE_EVIDENCE_FIELDS = (
    "access_activity_log billing_address cancellation_policy cancellation_policy_disclosure cancellation_rebuttal "
    "customer_communication customer_email_address customer_name customer_purchase_ip customer_signature "
    "duplicate_charge_documentation duplicate_charge_explanation duplicate_charge_id product_description receipt "
    "refund_policy refund_policy_disclosure refund_refusal_explanation service_date service_documentation "
    "shipping_address shipping_carrier shipping_date shipping_documentation shipping_tracking_number "
    "uncategorized_file uncategorized_text"
).split()


def _invalid(message: str, *, code: str | None = None, param: str | None = None, status: int = 400) -> UserError:
    contents: dict[str, Any] = {}
    if code:
        contents["code"] = code
    if param:
        contents["param"] = param
    return UserError(status, message, contents)


def _now() -> int:
    return int(clock.now())


def _int(value: Any, param: str) -> int | None:
    if value is None:
        return None
    converted = resources.try_convert_to_int(value)
    if type(converted) is not int:
        raise _invalid(f"Invalid integer: {value}", param=param)
    return converted


def _reject_unexpected(kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise _invalid("Received unknown parameter: " + ", ".join(sorted(kwargs)), param=sorted(kwargs)[0])


# --- Charge -------------------------------------------------------------------------------


def _refunds_of(charge: Charge) -> list[Refund]:
    return [obj for key, obj in list(store.items()) if key.startswith("refund:") and obj.charge == charge.id]


def _charge_amount_captured(self: Charge) -> int:
    if self.status != "succeeded" or not self.captured:
        return 0
    return self.amount if self._captured_amount is None else self._captured_amount


def _charge_amount_refunded(self: Charge) -> int:
    return sum(r.amount for r in _refunds_of(self) if r.status in ("succeeded", "pending"))


def _charge_refunded(self: Charge) -> bool:
    return self.amount > 0 and self.amount_refunded >= self.amount


def _charge_refundable(charge: Charge) -> int:
    """What a refund may still take: the captured amount less the refunds (not the released rest)."""
    taken = sum(r.amount for r in _refunds_of(charge) if not r._release and r.status in ("succeeded", "pending"))
    return charge.amount_captured - taken


def _charge_payment_method_details(self: Charge) -> dict[str, Any] | None:
    pm_id = str(self.payment_method or "")
    pm = store.get("payment_method:" + pm_id) or store.get("card:" + pm_id)
    if pm is None:
        return None
    if getattr(pm, "type", None) == "sepa_debit":
        return {"type": "sepa_debit", "sepa_debit": dict(pm.sepa_debit)}
    source = pm.card if isinstance(getattr(pm, "card", None), dict) else {}
    card: dict[str, Any] = {
        "brand": str(source.get("brand") or getattr(pm, "brand", "visa")).lower(),
        "country": source.get("country") or getattr(pm, "country", None),
        "exp_month": source.get("exp_month") or getattr(pm, "exp_month", None),
        "exp_year": source.get("exp_year") or getattr(pm, "exp_year", None),
        "fingerprint": source.get("fingerprint") or getattr(pm, "fingerprint", None),
        "funding": source.get("funding") or getattr(pm, "funding", "credit"),
        "last4": source.get("last4") or getattr(pm, "last4", None),
        "network": "visa",
        "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
        "three_d_secure": None,
    }
    if self._capture_before is not None:
        card["capture_before"] = self._capture_before
    return {"type": "card", "card": card}


def _mark_release(refund: Refund, charge: Charge, *, drop_balance_transaction: bool) -> None:
    """A refund that is the released (never captured) part of an authorization."""
    refund._release = True
    refund.payment_intent = charge.payment_intent
    refund.metadata = {}
    if drop_balance_transaction and refund.balance_transaction:
        store.pop("balance_transaction:" + refund.balance_transaction, None)
        refund.balance_transaction = None


def _release_authorization(charge: Charge) -> Refund | None:
    """Cancel / expiry of an uncaptured charge: Stripe refunds the whole authorization."""
    rest = charge.amount - charge.amount_refunded
    if rest <= 0:
        return None
    refund = Refund(charge=charge.id, amount=rest)
    _mark_release(refund, charge, drop_balance_transaction=True)
    return refund


def _charge_state(charge: Charge) -> dict[str, Any]:
    return {
        "amount_captured": charge.amount_captured,
        "amount_refunded": charge.amount_refunded,
        "captured": charge.captured,
        "refunded": charge.refunded,
    }


def _changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in before.items() if after.get(key) != value}


_original_charge_capture = Charge._capture


def _charge_capture(self: Charge, amount: Any, on_success: Any = None) -> None:
    requested = self.amount if amount is None else resources.try_convert_to_int(amount)
    refunds_before = {r.id for r in _refunds_of(self)}
    before = _charge_state(self)
    with events.deferred():
        _original_charge_capture(self, amount, on_success)
        if not self.captured:  # an asynchronous payment method: captured later
            return
        self._captured_amount = requested
        released = [r for r in _refunds_of(self) if r.id not in refunds_before]
        for refund in released:  # localstripe turns the uncaptured rest into a refund
            _mark_release(refund, self, drop_balance_transaction=False)
        events.emit("charge.captured", self, previous_attributes=_changed(before, _charge_state(self)))
        if released:
            events.emit("charge.refunded", self, previous_attributes=_changed(before, _charge_state(self)))


_original_charge_list_all = Charge._api_list_all


def _charge_list_all(cls: type, url: str, payment_intent: str | None = None, **kwargs: Any) -> List:
    li = _original_charge_list_all(url, **kwargs)
    li._list.reverse()  # newest first, like Stripe
    if payment_intent is not None:
        li._list = [c for c in li._list if c.payment_intent == payment_intent]
    return li


_original_charge_update = Charge._api_update


def _charge_update(cls: type, id: str, **data: Any) -> Charge:
    charge = _original_charge_update(id, **data)
    events.emit("charge.updated", charge, previous_attributes={key: None for key in data})
    return charge


# --- PaymentIntent ------------------------------------------------------------------------


def _pi_amount_capturable(self: PaymentIntent) -> int:
    return self.latest_charge.amount if self.status == "requires_capture" else 0


def _pi_amount_received(self: PaymentIntent) -> int:
    charge = self.latest_charge
    return charge.amount_captured if charge is not None else 0


def _expand_paths(expand: Any) -> list[str]:
    if expand is None:
        return []
    if isinstance(expand, str):
        return [expand]
    if isinstance(expand, dict):  # expand[0]=... that did not become a list
        return [expand[key] for key in sorted(expand, key=str)]
    return list(expand)


def _pi_export(self: PaymentIntent, expand: Any = None) -> dict[str, Any]:
    paths = _expand_paths(expand)
    charge_paths = [p for p in paths if p == "latest_charge" or p.startswith("latest_charge.")]
    obj = StripeObject._export(self, expand=[p for p in paths if p not in charge_paths])
    charge = self.latest_charge
    if charge is None:
        obj["latest_charge"] = None
    elif charge_paths:
        obj["latest_charge"] = charge._export(expand=[p.split(".", 1)[1] for p in charge_paths if "." in p])
    else:
        obj["latest_charge"] = charge.id  # Stripe sends the id unless expanded
    return obj


_original_pi_init = PaymentIntent.__init__


def _pi_init(self: PaymentIntent, *args: Any, **kwargs: Any) -> None:
    _original_pi_init(self, *args, **kwargs)
    events.emit("payment_intent.created", self)


def _pi_on_success(self: PaymentIntent) -> None:
    events.emit_later("payment_intent.succeeded", self)
    if self.invoice:
        Invoice._api_retrieve(self.invoice)._on_payment_success()


def _pi_report_failure(self: PaymentIntent) -> None:
    events.emit_later("payment_intent.payment_failed", self)
    if self.invoice:
        Invoice._api_retrieve(self.invoice)._on_payment_failure_now()
    self.latest_charge._raise_failure()


_original_pi_create_charge = PaymentIntent._create_charge


def _pi_create_charge(self: PaymentIntent, on_failure_now: Any) -> None:
    with events.deferred():
        try:
            _original_pi_create_charge(self, on_failure_now)
        except UserError:
            if self.latest_charge is not None and self.latest_charge.status == "failed":
                events.emit("charge.failed", self.latest_charge)
            raise
        charge = self.latest_charge
        if charge.status == "failed":
            events.emit("charge.failed", charge)
            return
        if self.capture_method == "manual" and not charge.captured:
            charge._authorized_at = _now()
            charge._capture_before = charge._authorized_at + AUTHORIZATION_VALIDITY
        if charge.status == "succeeded":
            events.emit("charge.succeeded", charge)
        if self.status == "requires_capture":
            events.emit("payment_intent.amount_capturable_updated", self, previous_attributes={"amount_capturable": 0})


_original_pi_confirm = PaymentIntent._confirm


def _pi_confirm(self: PaymentIntent, on_failure_now: Any) -> None:
    _original_pi_confirm(self, on_failure_now)
    if self.next_action:
        events.emit("payment_intent.requires_action", self, previous_attributes={"status": "requires_confirmation"})


_original_pi_authenticate = PaymentIntent._api_authenticate


def _pi_authenticate(**data: Any) -> PaymentIntent:
    intent = _original_pi_authenticate(**data)
    if intent._authentication_failed:
        events.emit("payment_intent.payment_failed", intent, previous_attributes={"status": "requires_action"})
    return intent


def _pi_cancel(id: str, cancellation_reason: str | None = None, **kwargs: Any) -> PaymentIntent:
    _reject_unexpected(kwargs)
    return intent_cancel(PaymentIntent._api_retrieve(id), reason=cancellation_reason)


def _pi_capture(id: str, amount_to_capture: Any = None, **kwargs: Any) -> PaymentIntent:
    _reject_unexpected(kwargs)
    return intent_capture(PaymentIntent._api_retrieve(id), amount=amount_to_capture)


def intent_capture(intent: PaymentIntent, *, amount: Any) -> PaymentIntent:
    status = intent.status
    if status != "requires_capture":
        raise _invalid(
            f"This PaymentIntent could not be captured because it has a status of {status}. Only a PaymentIntent "
            "with one of the following statuses may be captured: requires_capture.",
            code="payment_intent_unexpected_state",
        )
    charge = intent.latest_charge
    requested = _int(amount, "amount_to_capture")
    requested = charge.amount if requested is None else requested
    if not 0 < requested <= charge.amount:
        raise _invalid(
            f"The amount_to_capture ({requested}) must be positive and at most the amount capturable "
            f"({charge.amount}).",
            code="amount_too_large",
            param="amount_to_capture",
        )
    charge._capture(requested, on_success=intent._on_success)
    return intent


def intent_cancel(intent: PaymentIntent, *, reason: str | None, expired: bool = False) -> PaymentIntent:
    if not expired and reason is not None and reason not in CANCELLATION_REASONS:
        raise _invalid(
            "Invalid cancellation_reason: must be one of " + ", ".join(CANCELLATION_REASONS),
            param="cancellation_reason",
        )
    status = intent.status
    if status not in CANCELABLE:
        raise _invalid(
            f"You cannot cancel this PaymentIntent because it has a status of {status}. Only a PaymentIntent with "
            "one of the following statuses may be canceled: " + ", ".join(CANCELABLE) + ".",
            code="payment_intent_unexpected_state",
        )
    previous = {
        "status": status,
        "amount_capturable": intent.amount_capturable,
        "canceled_at": None,
        "cancellation_reason": None,
    }
    charge = intent.latest_charge if status == "requires_capture" else None
    charge_before = _charge_state(charge) if charge is not None else {}
    intent._canceled = True
    intent.next_action = None
    intent.canceled_at = _now()
    intent.cancellation_reason = "automatic" if expired else reason
    if charge is not None:
        charge._expired = expired
        _release_authorization(charge)
        if expired:
            events.emit("charge.expired", charge, previous_attributes=_changed(charge_before, _charge_state(charge)))
        else:
            events.emit("charge.refunded", charge, previous_attributes=_changed(charge_before, _charge_state(charge)))
    events.emit("payment_intent.canceled", intent, previous_attributes=previous)
    return intent


def expire_due_authorizations() -> list[str]:
    """Cancel (reason automatic) every uncaptured authorization whose capture_before has passed."""
    now = clock.now()
    expired = []
    for key, obj in list(store.items()):
        if not key.startswith("payment_intent:") or obj.status != "requires_capture":
            continue
        capture_before = obj.latest_charge._capture_before
        if capture_before is not None and now >= capture_before:
            intent_cancel(obj, reason=None, expired=True)
            expired.append(obj.id)
    return expired


def _on_clock_advance() -> None:
    try:
        expired = expire_due_authorizations()
    except Exception:  # the clock must keep working
        logger.exception("standin: expiring authorizations failed")
        return
    if expired:
        store.dump_to_disk()
        logger.info("standin: authorizations expired: %s", ", ".join(expired))


# --- Refund -------------------------------------------------------------------------------


def refund_create(
    *, charge: Charge, amount: Any = None, reason: str | None = None, metadata: dict[str, Any] | None = None
) -> Refund:
    """Stripe's checks, then a succeeded Refund; emits refund.created and charge.refunded."""
    if reason is not None and reason not in REFUND_REASONS:
        raise _invalid("Invalid reason: must be one of " + ", ".join(REFUND_REASONS), param="reason")
    if metadata is not None and not isinstance(metadata, dict):
        raise _invalid("Invalid metadata: must be an object", param="metadata")
    if charge.status != "succeeded":
        raise _invalid(f"Charge {charge.id} has failed: it cannot be refunded.", code="charge_not_refundable")
    if not charge.captured:
        raise _invalid(
            f"Charge {charge.id} is not captured: cancel its PaymentIntent to release the authorization instead.",
            code="charge_not_refundable",
        )
    if any(d.status in DISPUTE_OPEN_STATUSES for d in _disputes_of(charge)):
        raise _invalid(f"Charge {charge.id} has been charged back; it cannot be refunded.", code="charge_disputed")
    refundable = _charge_refundable(charge)
    requested = _int(amount, "amount")
    if requested is not None and requested <= 0:
        raise _invalid("Refund amount must be positive.", param="amount")
    if refundable <= 0:
        raise _invalid(f"Charge {charge.id} has already been refunded.", code="charge_already_refunded")
    requested = refundable if requested is None else requested
    if requested > refundable:
        raise _invalid(
            f"Refund amount ({requested}) is greater than unrefunded amount on charge ({refundable})",
            code="amount_too_large",
            param="amount",
        )
    before = _charge_state(charge)
    refund = Refund(charge=charge.id, amount=requested, metadata=dict(metadata or {}))
    refund.payment_intent = charge.payment_intent
    refund.reason = reason
    events.emit("refund.created", refund)
    events.emit("charge.refunded", charge, previous_attributes=_changed(before, _charge_state(charge)))
    return refund


def _refund_api_create(
    cls: type,
    charge: str | None = None,
    payment_intent: str | None = None,
    amount: Any = None,
    metadata: dict[str, Any] | None = None,
    reason: str | None = None,
    **kwargs: Any,
) -> Refund:
    _reject_unexpected(kwargs)
    if payment_intent is not None:
        intent = PaymentIntent._api_retrieve(payment_intent)
        if intent.status == "requires_capture":
            raise _invalid(
                f"PaymentIntent {intent.id} has status requires_capture: it has nothing captured to refund. "
                "Cancel the PaymentIntent to release the authorization instead.",
                code="payment_intent_unexpected_state",
            )
        if intent.latest_charge is None or intent.latest_charge.status != "succeeded":
            raise _invalid(
                f"PaymentIntent {intent.id} does not have a successful charge to refund.",
                code="charge_not_refundable",
            )
        charge_obj = intent.latest_charge
    elif charge is not None:
        charge_obj = Charge._api_retrieve(charge)
    else:
        raise _invalid("One of charge or payment_intent is required.", code="parameter_missing")
    return refund_create(charge=charge_obj, amount=amount, reason=reason, metadata=metadata)


def _refund_list_all(
    cls: type,
    url: str,
    charge: str | None = None,
    payment_intent: str | None = None,
    limit: Any = None,
    starting_after: str | None = None,
    **kwargs: Any,
) -> List:
    _reject_unexpected(kwargs)
    if payment_intent is not None:
        intent = PaymentIntent._api_retrieve(payment_intent)
        charge = intent.latest_charge.id if intent.latest_charge is not None else ""
    elif charge is not None:
        Charge._api_retrieve(charge)  # 404 if unknown
    li = List(url, limit=limit, starting_after=starting_after)
    refunds = [obj for key, obj in list(store.items()) if key.startswith("refund:")]
    if charge is not None:
        refunds = [r for r in refunds if r.charge == charge]
    refunds.reverse()  # the store keeps insertion order: newest first, ties included
    refunds.sort(key=lambda r: r.created, reverse=True)
    li._list = refunds
    return li


_original_refund_update = Refund._api_update


def _refund_update(cls: type, id: str, **data: Any) -> Refund:
    refund = _original_refund_update(id, **data)
    previous = {key: None for key in data}
    events.emit("refund.updated", refund, previous_attributes=previous)
    events.emit("charge.refund.updated", refund, previous_attributes=previous)
    return refund


def refund_fail(refund: Refund, *, failure_reason: str) -> Refund:
    if refund._release:
        raise _invalid(f"Refund {refund.id} is a released authorization; it cannot fail.")
    if refund.status not in ("succeeded", "pending"):
        raise _invalid(f"Refund {refund.id} has status {refund.status}; only a succeeded or pending refund can fail.")
    previous = {"status": refund.status, "failure_reason": None}
    refund.status = "failed"
    refund.failure_reason = failure_reason
    txn = resources.BalanceTransaction(
        amount=refund.amount,
        currency=refund.currency,
        description="REFUND FAILURE",
        exchange_rate=1.0,
        reporting_category="refund",
        source=refund.id,
        type="refund",
    )
    refund.failure_balance_transaction = txn.id
    events.emit("refund.failed", refund, previous_attributes=previous)
    events.emit("refund.updated", refund, previous_attributes=previous)
    events.emit("charge.refund.updated", refund, previous_attributes=previous)
    return refund


# --- Dispute ------------------------------------------------------------------------------


class Dispute(StripeObject):
    object = "dispute"
    _id_prefix = "dp_"

    def __init__(self, *, charge: Charge, amount: int, reason: str) -> None:
        super().__init__()
        self.amount = amount
        self.currency = charge.currency
        self.charge = charge.id
        self.payment_intent = charge.payment_intent
        self.reason = reason
        self.status = "needs_response"
        self.balance_transactions: list[dict[str, Any]] = []
        self.evidence = {name: None for name in DISPUTE_EVIDENCE_FIELDS}
        self.evidence_details = {
            "due_by": _now() + DISPUTE_EVIDENCE_WINDOW,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        }
        self.is_charge_refundable = False
        self.metadata: dict[str, Any] = {}
        self.payment_method_details = {
            "type": "card",
            "card": {"brand": "visa", "case_type": "chargeback", "network": "visa", "network_reason_code": "10.4"},
        }

    def _add_balance_transaction(self, amount: int, description: str) -> None:
        txn = {
            "id": "txn_" + resources.random_id(24),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": _now(),
            "created": _now(),
            "currency": self.currency,
            "description": description,
            "fee": 0,
            "fee_details": [],
            "net": amount,
            "reporting_category": "dispute" if amount < 0 else "dispute_reversal",
            "source": self.id,
            "status": "available",
            "type": "adjustment",
        }
        # A new list, never appended in place: event snapshots share the old one.
        self.balance_transactions = [*self.balance_transactions, txn]

    @classmethod
    def _api_create(cls, **data: Any) -> Dispute:
        raise UserError(405, "Method Not Allowed")

    @classmethod
    def _api_update(cls, id: str, **data: Any) -> Dispute:
        raise UserError(405, "Method Not Allowed")

    @classmethod
    def _api_delete(cls, id: str) -> Dispute:
        raise UserError(405, "Method Not Allowed")

    @classmethod
    def _api_list_all(
        cls,
        url: str,
        charge: str | None = None,
        payment_intent: str | None = None,
        limit: Any = None,
        starting_after: str | None = None,
        **kwargs: Any,
    ) -> List:
        _reject_unexpected(kwargs)
        li = super()._api_list_all(url, limit=limit, starting_after=starting_after)
        li._list.reverse()
        if charge is not None:
            li._list = [d for d in li._list if d.charge == charge]
        if payment_intent is not None:
            li._list = [d for d in li._list if d.payment_intent == payment_intent]
        return li


def _disputes_of(charge: Charge) -> list[Dispute]:
    return [obj for key, obj in list(store.items()) if key.startswith("dispute:") and obj.charge == charge.id]


def dispute_open(*, charge: Charge, amount: Any = None, reason: str = "fraudulent") -> Dispute:
    if reason not in DISPUTE_REASONS:
        raise _invalid("Invalid reason: must be one of " + ", ".join(DISPUTE_REASONS), param="reason")
    if charge.amount_captured <= 0:
        raise _invalid(f"Charge {charge.id} has no captured amount to dispute.")
    requested = _int(amount, "amount")
    requested = charge.amount_captured if requested is None else requested
    if not 0 < requested <= charge.amount_captured:
        raise _invalid(f"amount must be between 1 and {charge.amount_captured}", param="amount")
    dispute = Dispute(charge=charge, amount=requested, reason=reason)
    charge.disputed = True
    # Stripe withdraws the disputed amount when the dispute is opened.
    dispute._add_balance_transaction(-requested, f"Chargeback withdrawal for {charge.id}")
    events.emit("charge.dispute.created", dispute)
    events.emit("charge.dispute.funds_withdrawn", dispute)
    return dispute


def dispute_update(dispute: Dispute, *, status: str) -> Dispute:
    if dispute.status not in DISPUTE_OPEN_STATUSES:
        raise _invalid(f"Dispute {dispute.id} is closed ({dispute.status}).")
    if status not in DISPUTE_OPEN_STATUSES:
        raise _invalid("status must be one of " + ", ".join(DISPUTE_OPEN_STATUSES) + " (close it to end it)")
    previous = {"status": dispute.status}
    dispute.status = status
    if status.endswith("under_review"):
        dispute.evidence_details = {
            **dispute.evidence_details,
            "has_evidence": True,
            "submission_count": dispute.evidence_details["submission_count"] + 1,
        }
    events.emit("charge.dispute.updated", dispute, previous_attributes=previous)
    return dispute


def dispute_close(dispute: Dispute, *, outcome: str) -> Dispute:
    if outcome not in ("won", "lost"):
        raise _invalid("outcome must be 'won' or 'lost'", param="outcome")
    if dispute.status not in DISPUTE_OPEN_STATUSES:
        raise _invalid(f"Dispute {dispute.id} is already closed ({dispute.status}).")
    previous = {"status": dispute.status}
    dispute.status = outcome
    if outcome == "won":
        dispute._add_balance_transaction(dispute.amount, f"Chargeback reversal for {dispute.charge}")
        events.emit("charge.dispute.funds_reinstated", dispute, previous_attributes=previous)
    events.emit("charge.dispute.closed", dispute, previous_attributes=previous)
    return dispute


# --- Control routes -------------------------------------------------------------------------


def _ok(obj: Any) -> web.Response:
    return server.json_response(obj._export())


_body = events.read_json


async def _control_refund_fail(request: web.Request) -> web.Response:
    data = await _body(request)
    refund = Refund._api_retrieve(request.match_info["id"])
    return _ok(refund_fail(refund, failure_reason=str(data.get("failure_reason") or "expired_or_canceled_card")))


async def _control_dispute_create(request: web.Request) -> web.Response:
    data = await _body(request)
    if data.get("payment_intent"):
        intent = PaymentIntent._api_retrieve(str(data["payment_intent"]))
        if intent.latest_charge is None:
            raise _invalid(f"PaymentIntent {intent.id} has no charge to dispute.")
        charge = intent.latest_charge
    elif data.get("charge"):
        charge = Charge._api_retrieve(str(data["charge"]))
    else:
        raise _invalid("payment_intent or charge is required")
    return _ok(dispute_open(charge=charge, amount=data.get("amount"), reason=str(data.get("reason") or "fraudulent")))


async def _control_dispute_update(request: web.Request) -> web.Response:
    data = await _body(request)
    dispute = Dispute._api_retrieve(request.match_info["id"])
    return _ok(dispute_update(dispute, status=str(data.get("status") or "under_review")))


async def _control_dispute_close(request: web.Request) -> web.Response:
    data = await _body(request)
    dispute = Dispute._api_retrieve(request.match_info["id"])
    return _ok(dispute_close(dispute, outcome=str(data.get("outcome") or "")))


async def _control_expire(request: web.Request) -> web.Response:
    intent = PaymentIntent._api_retrieve(request.match_info["id"])
    if intent.status != "requires_capture":
        raise _invalid(
            f"PaymentIntent {intent.id} has status {intent.status}; only an uncaptured authorization (requires_capture)"
            " can expire.",
            code="payment_intent_unexpected_state",
        )
    return _ok(intent_cancel(intent, reason=None, expired=True))


async def _control_dashboard_capture(request: web.Request) -> web.Response:
    data = await _body(request)
    intent = PaymentIntent._api_retrieve(request.match_info["id"])
    with events.request_context(events.dashboard_request()):
        return _ok(intent_capture(intent, amount=data.get("amount_to_capture", data.get("amount"))))


async def _control_dashboard_refund(request: web.Request) -> web.Response:
    data = await _body(request)
    intent = PaymentIntent._api_retrieve(request.match_info["id"])
    if intent.status == "requires_capture":
        raise _invalid(
            f"PaymentIntent {intent.id} is not captured: cancel it instead.", code="payment_intent_unexpected_state"
        )
    if intent.latest_charge is None:
        raise _invalid(f"PaymentIntent {intent.id} has no charge to refund.", code="charge_not_refundable")
    with events.request_context(events.dashboard_request()):
        return _ok(refund_create(charge=intent.latest_charge, amount=data.get("amount"), reason=data.get("reason")))


async def _control_dashboard_cancel(request: web.Request) -> web.Response:
    data = await _body(request)
    intent = PaymentIntent._api_retrieve(request.match_info["id"])
    with events.request_context(events.dashboard_request()):
        return _ok(intent_cancel(intent, reason=data.get("cancellation_reason")))


async def _control_reset(request: web.Request) -> web.Response:
    await events.reset()
    return web.json_response({"reset": True})


# --- Install ------------------------------------------------------------------------------


def _override_route(app: web.Application, method: str, path: str, func: Any) -> None:
    """Point an existing localstripe route at ``func`` (its handlers captured the original)."""
    for route in app.router.routes():
        resource = route.resource
        if route.method == method and resource is not None and resource.canonical == path:
            route._handler = server.api_extra(func, path)
            return
    raise RuntimeError(f"localstripe has no route {method} {path}")


def _control_get_api_key(request: web.Request) -> str | None:
    if request.path.startswith("/_control/"):
        return "sk_standin_control"  # control routes need no API key
    return _original_get_api_key(request)


_original_get_api_key = server.get_api_key


def _patch_classes() -> None:
    Charge.disputed = False
    Charge._captured_amount = None
    Charge._capture_before = None
    Charge._authorized_at = None
    Charge._expired = False
    Charge.amount_captured = property(_charge_amount_captured)
    Charge.amount_refunded = property(_charge_amount_refunded)
    Charge.refunded = property(_charge_refunded)
    Charge.payment_method_details = property(_charge_payment_method_details)
    Charge._capture = _charge_capture
    Charge._api_list_all = classmethod(_charge_list_all)
    Charge._api_update = classmethod(_charge_update)

    PaymentIntent.canceled_at = None
    PaymentIntent.cancellation_reason = None
    PaymentIntent.amount_capturable = property(_pi_amount_capturable)
    PaymentIntent.amount_received = property(_pi_amount_received)
    PaymentIntent._export = _pi_export
    PaymentIntent.__init__ = _pi_init
    PaymentIntent._on_success = _pi_on_success
    PaymentIntent._report_failure = _pi_report_failure
    PaymentIntent._create_charge = _pi_create_charge
    PaymentIntent._confirm = _pi_confirm

    Refund.reason = None
    Refund.failure_reason = None
    Refund.failure_balance_transaction = None
    Refund._release = False
    Refund._api_create = classmethod(_refund_api_create)
    Refund._api_list_all = classmethod(_refund_list_all)
    Refund._api_update = classmethod(_refund_update)


def install(app: web.Application) -> None:
    events.install(app)
    _patch_classes()
    server.get_api_key = _control_get_api_key
    clock.on_advance(_on_clock_advance)

    _override_route(app, "POST", "/v1/payment_intents/{id}/cancel", _pi_cancel)
    _override_route(app, "POST", "/v1/payment_intents/{id}/capture", _pi_capture)
    _override_route(app, "POST", "/v1/payment_intents/{id}/_authenticate", _pi_authenticate)

    app.router.add_get("/v1/disputes/{id}", server.api_retrieve(Dispute, "/v1/disputes/{id}"))
    app.router.add_get("/v1/disputes", server.api_list_all(Dispute, "/v1/disputes"))

    app.router.add_post("/_control/reset-stripe", _control_reset)
    app.router.add_post("/_control/refunds/{id}/fail", _control_refund_fail)
    app.router.add_post("/_control/disputes", _control_dispute_create)
    app.router.add_post("/_control/disputes/{id}/update", _control_dispute_update)
    app.router.add_post("/_control/disputes/{id}/close", _control_dispute_close)
    app.router.add_post("/_control/payment_intents/{id}/expire", _control_expire)
    app.router.add_post("/_control/dashboard/payment_intents/{id}/capture", _control_dashboard_capture)
    app.router.add_post("/_control/dashboard/payment_intents/{id}/refund", _control_dashboard_refund)
    app.router.add_post("/_control/dashboard/payment_intents/{id}/cancel", _control_dashboard_cancel)
