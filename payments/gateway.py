"""The Stripe gateway: the only module of the product that imports ``stripe``.

Functions are keyword-only, take plain values and return plain dicts (never stripe
objects). Every write sends the caller's ``idempotency_key``. A ``StripeError`` never
escapes: it is logged (operation, request id, codes; never the API key, a client
secret or card data) and raised again as an ``ApplicationError``:

* ``CardError`` -> ``PaymentError`` 402 ``card_declined`` (``payment_requires_action``
  when the code or decline code is ``authentication_required``);
* ``APIConnectionError`` (timeouts included), ``RateLimitError`` -> ``ProviderUnavailable`` 503;
* ``APIError`` with HTTP status >= 500 -> ``ProviderUnavailable`` 502;
* on a *write*, each of those, and ``IdempotencyError`` (the key is in use by a request still
  running, or was first used with other parameters), is ``OutcomeUnknown`` (a
  ``ProviderUnavailable``): Stripe may have acted. The caller keeps its operation pending and
  retries with the same idempotency key, or re-reads Stripe, until the outcome is known. Only
  a definite refusal (card error, invalid request, authentication) means nothing happened;
* ``InvalidRequestError`` 404 / ``resource_missing`` -> ``NotFound``;
* any other ``StripeError`` -> ``ApplicationError`` 502 ``payment_provider_error``.

``settings.STRIPE_API_BASE`` points the client (and dj-stripe's own requests) at another
server: localstripe in development and tests. docs/localstripe.md lists what localstripe
does differently and how callers account for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import stripe
from django.conf import settings
from django.db import connection, transaction
from stripe.params import (
    CustomerCreateParams,
    CustomerPaymentSourceCreateParams,
    DisputeListParams,
    PaymentIntentCaptureParams,
    PaymentIntentCreateParams,
    PaymentIntentRetrieveParams,
    PaymentIntentUpdateParams,
    PaymentMethodAttachParams,
    PaymentMethodListParams,
    RefundCreateParams,
    RefundListParams,
)

from common.errors import ApplicationError, NotFound, PaymentError, ProviderUnavailable, ValidationError

logger = logging.getLogger(__name__)

CaptureMethod = Literal["automatic", "automatic_async", "manual"]
SetupFutureUsage = Literal["on_session", "off_session"]
RefundReason = Literal["duplicate", "fraudulent", "requested_by_customer"]

# dj-stripe needs an Account row for the API key; localstripe has no /v1/account.
LOCAL_ACCOUNT_ID = "acct_localstripe"

_client: stripe.StripeClient | None = None
_client_lock = threading.Lock()


class OutcomeUnknown(ProviderUnavailable):
    """A Stripe write whose outcome we do not know (timeout, reset, 5xx, 429, key conflict).

    Stripe may or may not have acted. Never settle the operation as failed on this: retry it
    with the *same* idempotency key (Stripe replays what it did) or re-read the object.
    """


class ConfirmDeclined(PaymentError):
    """A PaymentIntent created with ``confirm=True`` was refused (card declined, authentication
    required): Stripe did create the intent, in ``requires_payment_method`` with
    ``last_payment_error``. ``payment_intent_id`` names it when Stripe's error says so (Stripe
    sends the intent, localstripe only the failed charge, which names it); ``None`` otherwise."""

    def __init__(self, error: PaymentError, *, payment_intent_id: str | None) -> None:
        super().__init__(error.message, code=error.code, param=error.param)
        self.payment_intent_id = payment_intent_id


class WebhookSignatureError(ValidationError):
    code = "invalid_signature"
    default_message = "The webhook signature is missing, invalid or too old."


# --- Client -----------------------------------------------------------------


def _get_client() -> stripe.StripeClient:
    """The shared client, built from settings on first use."""
    global _client
    with _client_lock:
        if _client is None:
            _client = _build_client()
        return _client


def reset_client() -> None:
    """Forget the cached client so the next call reads settings again (tests)."""
    global _client
    with _client_lock:
        _client = None


def _build_client() -> stripe.StripeClient:
    http_client = stripe.new_default_http_client(timeout=settings.STRIPE_TIMEOUT)
    api_base = settings.STRIPE_API_BASE or stripe.DEFAULT_API_BASE
    # dj-stripe talks to Stripe through the module-level configuration: keep it
    # in line with ours so its syncs reach the same server with the same limits.
    stripe.api_base = api_base
    stripe.api_version = settings.STRIPE_API_VERSION
    stripe.max_network_retries = settings.STRIPE_MAX_NETWORK_RETRIES
    stripe.default_http_client = http_client
    return stripe.StripeClient(
        settings.STRIPE_API_KEY,
        stripe_version=settings.STRIPE_API_VERSION,
        base_addresses={"api": api_base},
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
        http_client=http_client,
    )


# --- Error mapping ----------------------------------------------------------

_SECRETS = re.compile(r"\b(?:sk|rk|pk|whsec)_\w+|\b\w+_secret_\w+")


def _redact(text: str | None) -> str:
    return _SECRETS.sub("[redacted]", text or "")


def _translate(exc: stripe.StripeError, decline_code: str | None, *, write: bool) -> ApplicationError:
    status = exc.http_status or 0
    if write and (
        isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError, stripe.IdempotencyError))
        or status >= 500
        or status == 409
    ):
        return OutcomeUnknown(http_status=502 if status >= 500 else 503)
    if isinstance(exc, stripe.CardError):
        if "authentication_required" in (exc.code, decline_code):
            message = exc.user_message or "This payment needs additional authentication."
            return PaymentError(message, code="payment_requires_action")
        return PaymentError(exc.user_message or "Your card was declined.", code="card_declined")
    if isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError)):
        return ProviderUnavailable()
    if isinstance(exc, stripe.APIError) and status >= 500:
        return ProviderUnavailable(http_status=502)
    if isinstance(exc, stripe.InvalidRequestError) and (status == 404 or exc.code == "resource_missing"):
        return NotFound()
    message = "The payment provider rejected the request."
    return ApplicationError(message, code="payment_provider_error", http_status=502)


def _call(operation: str, request: Callable[[], Any], idempotency_key: str | None = None) -> Any:
    try:
        return request()
    except stripe.StripeError as exc:
        decline_code = getattr(exc.error, "decline_code", None) if exc.error else None
        error = _translate(exc, decline_code, write=idempotency_key is not None)
        logger.warning(
            "stripe_error operation=%s error=%s http_status=%s code=%s decline_code=%s param=%s request_id=%s "
            "idempotency_key=%s mapped=%s message=%r",
            *(operation, type(exc).__name__, exc.http_status, exc.code, decline_code, getattr(exc, "param", None)),
            *(exc.request_id, idempotency_key, error.code, _redact(exc.user_message)),
        )
        raise error from exc


def _as_dict(obj: Any) -> dict[str, Any]:
    data = obj.to_dict(recursive=True, for_json=True)
    # localstripe stores form-encoded amounts as strings after an update; Stripe
    # itself always answers integers.
    for key in ("amount", "amount_capturable", "amount_received"):
        value = data.get(key)
        if isinstance(value, str) and value.isdigit():
            data[key] = int(value)
    return data


def _write(operation: str, idempotency_key: str, request: Callable[[stripe.StripeClient, Any], Any]) -> dict[str, Any]:
    """Send a write with the caller's idempotency key (retries reuse it)."""
    if not idempotency_key:
        raise ValueError("Stripe writes need an idempotency key.")
    options = {"idempotency_key": idempotency_key}
    return _as_dict(_call(operation, lambda: request(_get_client(), options), idempotency_key))


def _read(operation: str, request: Callable[[stripe.StripeClient], Any]) -> dict[str, Any]:
    return _as_dict(_call(operation, lambda: request(_get_client())))


# --- PaymentIntents ---------------------------------------------------------


def payment_intent_create(
    *,
    amount: int,
    currency: str,
    metadata: dict[str, str],
    capture_method: CaptureMethod,
    customer: str | None = None,
    payment_method: str | None = None,
    automatic_payment_methods: bool,
    setup_future_usage: SetupFutureUsage | None = None,
    confirm: bool = False,
    idempotency_key: str,
) -> dict[str, Any]:
    """Create a PaymentIntent; ``confirm=True`` confirms it in the same call.

    With ``automatic_payment_methods`` the dashboard's methods are offered, limited
    to those that never redirect (there is no return_url to come back to);
    without, the intent is card-only (the only form localstripe accepts).
    """
    params: PaymentIntentCreateParams = {"amount": amount, "currency": currency.lower(), "metadata": metadata}
    if capture_method is not None:
        params["capture_method"] = capture_method
    if customer is not None:
        params["customer"] = customer
    if payment_method is not None:
        params["payment_method"] = payment_method
    if setup_future_usage is not None:
        params["setup_future_usage"] = setup_future_usage
    if automatic_payment_methods:
        params["automatic_payment_methods"] = {"enabled": True, "allow_redirects": "never"}
    else:
        params["payment_method_types"] = ["card"]
    if confirm:
        params["confirm"] = True
    try:
        return _write(
            "payment_intent_create",
            idempotency_key,
            lambda c, o: c.v1.payment_intents.create(params=params, options=o),
        )
    except PaymentError as exc:
        if not confirm:
            raise
        raise ConfirmDeclined(exc, payment_intent_id=_declined_intent_id(exc.__cause__)) from exc.__cause__


def _declined_intent_id(cause: BaseException | None) -> str | None:
    """The PaymentIntent a card error of a create-and-confirm is about (Stripe: ``error.payment_intent``;
    localstripe: read from ``error.charge``). ``None`` when neither names it or the read fails."""
    error = getattr(cause, "error", None)
    if error is None:
        return None
    intent = getattr(error, "payment_intent", None)
    if isinstance(intent, dict) and intent.get("id"):  # a StripeObject is a dict
        return str(intent["id"])
    charge_id = getattr(error, "charge", None)
    if not charge_id:
        return None
    try:
        charge = charge_retrieve(id=str(charge_id))
    except ApplicationError:
        return None
    payment_intent = charge.get("payment_intent")
    return str(payment_intent) if payment_intent else None


def payment_intent_update(
    *,
    id: str,
    amount: int | None = None,
    metadata: dict[str, str] | None = None,
    payment_method: str | None = None,
    setup_future_usage: SetupFutureUsage | Literal[""] | None = None,
    idempotency_key: str,
) -> dict[str, Any]:
    """Update the given fields (``None`` leaves a field alone; ``""`` unsets setup_future_usage)."""
    params: PaymentIntentUpdateParams = {}
    if amount is not None:
        params["amount"] = amount
    if metadata is not None:
        params["metadata"] = metadata
    if payment_method is not None:
        params["payment_method"] = payment_method
    if setup_future_usage is not None:
        params["setup_future_usage"] = setup_future_usage
    if not params:  # nothing to change (localstripe answers 400 to an empty update)
        return payment_intent_retrieve(id=id)
    return _write(
        "payment_intent_update", idempotency_key, lambda c, o: c.v1.payment_intents.update(id, params=params, options=o)
    )


def payment_intent_retrieve(*, id: str) -> dict[str, Any]:
    """The intent with its latest charge expanded (captured amounts, refunds, ``capture_before``)."""
    params: PaymentIntentRetrieveParams = {"expand": ["latest_charge"]}
    return _read("payment_intent_retrieve", lambda client: client.v1.payment_intents.retrieve(id, params=params))


def payment_intent_confirm(*, id: str, idempotency_key: str) -> dict[str, Any]:
    """Confirm with the payment method already set on the intent (set it at create or update)."""
    return _write("payment_intent_confirm", idempotency_key, lambda c, o: c.v1.payment_intents.confirm(id, options=o))


def payment_intent_cancel(*, id: str, idempotency_key: str) -> dict[str, Any]:
    """Release the authorization. On a retry after an unknown outcome, an intent that is
    canceled already answers 400 at Stripe unless the key replays: callers re-read it."""
    return _write("payment_intent_cancel", idempotency_key, lambda c, o: c.v1.payment_intents.cancel(id, options=o))


def payment_intent_capture(*, id: str, amount_to_capture: int | None = None, idempotency_key: str) -> dict[str, Any]:
    params: PaymentIntentCaptureParams = {}
    if amount_to_capture is not None:
        params["amount_to_capture"] = amount_to_capture
    return _write(
        "payment_intent_capture",
        idempotency_key,
        lambda c, o: c.v1.payment_intents.capture(id, params=params, options=o),
    )


def latest_charge_id(payment_intent: dict[str, Any]) -> str | None:
    """The id of the intent's latest charge (Stripe sends an id, localstripe the object)."""
    charge = payment_intent.get("latest_charge")
    if isinstance(charge, dict):
        return charge.get("id")
    return charge


# --- Refunds, customers, payment methods, charges ----------------------------


def refund_create(
    *,
    payment_intent: str,
    amount: int | None = None,
    reason: RefundReason | None = None,
    metadata: dict[str, str] | None = None,
    idempotency_key: str,
) -> dict[str, Any]:
    """Refund ``amount`` (default: everything) of the intent's charge."""
    params: RefundCreateParams = {"payment_intent": payment_intent}
    if amount is not None:
        params["amount"] = amount
    if reason is not None:
        params["reason"] = reason
    if metadata is not None:
        params["metadata"] = metadata
    return _write("refund_create", idempotency_key, lambda c, o: c.v1.refunds.create(params=params, options=o))


def refund_list(*, payment_intent: str) -> list[dict[str, Any]]:
    """Every refund of the intent's charge (for reconciliation: ``orders.services.order_payment_sync``)."""
    params: RefundListParams = {"payment_intent": payment_intent, "limit": 100}

    def request() -> list[Any]:
        return list(_get_client().v1.refunds.list(params=params).auto_paging_iter())

    return [_as_dict(refund) for refund in _call("refund_list", request)]


def dispute_list(*, payment_intent: str) -> list[dict[str, Any]]:
    """Every dispute of the intent's charge (for reconciliation when dispute events were lost)."""
    params: DisputeListParams = {"payment_intent": payment_intent, "limit": 100}

    def request() -> list[Any]:
        return list(_get_client().v1.disputes.list(params=params).auto_paging_iter())

    return [_as_dict(dispute) for dispute in _call("dispute_list", request)]


def customer_create(*, email: str, metadata: dict[str, str], idempotency_key: str) -> dict[str, Any]:
    params: CustomerCreateParams = {"email": email, "metadata": metadata}
    return _write("customer_create", idempotency_key, lambda c, o: c.v1.customers.create(params=params, options=o))


def customer_retrieve(*, id: str) -> dict[str, Any]:
    return _read("customer_retrieve", lambda client: client.v1.customers.retrieve(id))


def customer_source_create(*, customer: str, source: str, idempotency_key: str) -> dict[str, Any]:
    """Attach a Stripe.js card token (``tok_...``) to a Customer; returns the card (``card_...``).

    A ``card_...`` id is accepted wherever a PaymentMethod id is (a PaymentIntent's
    ``payment_method``), on Stripe and on localstripe, whose PaymentMethod create takes no
    token. A card refused on attach raises ``PaymentError`` ``card_declined``.
    """
    params: CustomerPaymentSourceCreateParams = {"source": source}
    return _write(
        "customer_source_create",
        idempotency_key,
        lambda c, o: c.v1.customers.payment_sources.create(customer, params=params, options=o),
    )


def payment_method_retrieve(*, id: str) -> dict[str, Any]:
    return _read("payment_method_retrieve", lambda client: client.v1.payment_methods.retrieve(id))


def payment_method_list(*, customer: str) -> list[dict[str, Any]]:
    """Every card saved on the customer."""
    params: PaymentMethodListParams = {"customer": customer, "type": "card", "limit": 100}

    def request() -> list[Any]:
        return list(_get_client().v1.payment_methods.list(params=params).auto_paging_iter())

    return [_as_dict(method) for method in _call("payment_method_list", request)]


def payment_method_attach(*, id: str, customer: str, idempotency_key: str) -> dict[str, Any]:
    params: PaymentMethodAttachParams = {"customer": customer}
    return _write(
        "payment_method_attach", idempotency_key, lambda c, o: c.v1.payment_methods.attach(id, params=params, options=o)
    )


def payment_method_detach(*, id: str, idempotency_key: str) -> dict[str, Any]:
    return _write("payment_method_detach", idempotency_key, lambda c, o: c.v1.payment_methods.detach(id, options=o))


def charge_retrieve(*, id: str) -> dict[str, Any]:
    return _read("charge_retrieve", lambda client: client.v1.charges.retrieve(id))


# --- Webhooks ---------------------------------------------------------------


def webhook_event_construct(*, payload: bytes, sig_header: str, secrets: list[str], tolerance: int) -> dict[str, Any]:
    """Verify ``Stripe-Signature`` against each secret (rotation) and return the event.

    Raises ``WebhookSignatureError`` (400) if no secret verifies the payload, the
    timestamp is more than ``tolerance`` seconds old or ahead of our clock (stripe-python
    checks only the first), or the payload is not an event.
    """
    for secret in filter(None, secrets):
        try:
            stripe.WebhookSignature.verify_header(payload, sig_header, secret, tolerance)
        except stripe.SignatureVerificationError:
            continue
        except (UnicodeDecodeError, ValueError):
            break
        signed_at = _signature_timestamp(sig_header)
        if signed_at is None or signed_at > time.time() + tolerance:
            break
        try:
            event = json.loads(payload)
        except ValueError:
            break
        if isinstance(event, dict) and event.get("object") == "event" and event.get("id"):
            return event
        break
    logger.warning("stripe_webhook_rejected reason=signature_or_payload secrets=%d", len(list(filter(None, secrets))))
    raise WebhookSignatureError()


def _signature_timestamp(sig_header: str) -> int | None:
    """The ``t=`` of a ``Stripe-Signature`` header (already verified: the HMAC covers it)."""
    for item in sig_header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            return int(value) if value.isdigit() else None
    return None


# --- dj-stripe mirror -------------------------------------------------------

_MIRRORED_MODELS = {  # Stripe "object" -> dj-stripe model
    **{"payment_intent": "PaymentIntent", "customer": "Customer", "payment_method": "PaymentMethod"},
    **{"charge": "Charge", "refund": "Refund", "dispute": "Dispute"},
}


def djstripe_bootstrap() -> None:
    """Make sure dj-stripe knows the Account that owns the configured key (idempotent).

    dj-stripe files every synced object under the Account of the API key, which
    it looks up through ``APIKey`` and, when missing, fetches from
    ``GET /v1/account``. localstripe has no such endpoint, so when
    ``STRIPE_API_BASE`` is set we create a stub Account (``LOCAL_ACCOUNT_ID``)
    instead. Against real Stripe this fetches the account once.
    """
    from djstripe.models import Account, APIKey

    _get_client()  # configures the stripe module that dj-stripe uses
    api_key = settings.STRIPE_API_KEY
    if APIKey.objects.filter(secret=api_key, djstripe_owner_account__isnull=False).exists():
        return
    if settings.STRIPE_API_BASE is None:
        _call("djstripe_bootstrap", lambda: Account.get_or_retrieve_for_api_key(api_key))
        return
    with transaction.atomic():
        account, _ = Account.objects.get_or_create(
            id=LOCAL_ACCOUNT_ID,
            defaults={
                "livemode": False,
                "stripe_data": {"id": LOCAL_ACCOUNT_ID, "object": "account", "livemode": False},
            },
        )
        key, _ = APIKey.objects.get_or_create_by_api_key(api_key)
        if key.djstripe_owner_account_id is None:
            key.djstripe_owner_account = account
            key.save(update_fields=["djstripe_owner_account", "djstripe_updated"])


def mirror(obj: dict[str, Any]) -> bool:
    """Copy a Stripe object into dj-stripe's tables. Never raises: failures are logged.

    Supports payment intents, customers, payment methods, charges, refunds and
    disputes. dj-stripe may fetch related objects from Stripe, so call this
    outside long transactions. Returns whether the object was mirrored.
    """
    object_type, object_id = obj.get("object"), obj.get("id")
    method = obj.get("payment_method")
    method_id = method.get("id") if isinstance(method, dict) else method
    if object_type == "payment_intent" and str(method_id or "").startswith("card_"):
        # A tokenized card (customer_source_create) is a ``card_...``, which dj-stripe cannot
        # store as a PaymentMethod: mirror the intent without that link.
        obj = {**obj, "payment_method": None}
    model_name = _MIRRORED_MODELS.get(object_type or "")
    if model_name is None or not object_id:
        logger.warning("stripe_mirror_skipped object=%s id=%s", object_type, object_id)
        return False
    # Inside the caller's transaction, a savepoint keeps a failed sync from
    # poisoning it; outside, dj-stripe's own atomic blocks are enough.
    savepoint = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    try:
        from djstripe import models as djstripe_models

        with savepoint:
            djstripe_bootstrap()
            model = getattr(djstripe_models, model_name)
            model.sync_from_stripe_data(obj, api_key=settings.STRIPE_API_KEY)
    except Exception as exc:  # noqa: BLE001 - mirroring must never break the payment flow
        first_line = _redact(next(iter(str(exc).splitlines()), ""))[:200]
        logger.warning(
            "stripe_mirror_failed object=%s id=%s error=%s message=%r",
            *(object_type, object_id, type(exc).__name__, first_line),
        )
        return False
    return True
