"""Payment sessions: one Stripe PaymentIntent per cart (docs/payments.md), the Stripe-calling half.

Creating, updating, confirming and canceling the cart's PaymentIntent. Mirroring an intent's
status into the session row (database only) is ``payments.services.session_status``.

* Every Stripe call goes through ``payments.gateway`` and happens OUTSIDE any database
  transaction; our rows are written in short transactions before/after it.
* Every Stripe write carries a deterministic idempotency key (``idempotency_key``): a retry
  of the same logical step replays Stripe's first answer instead of doing it twice.
* payments never imports carts or orders: the caller passes plain values (cart id, version,
  amount, currency, metadata).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from common import metrics
from common.errors import ApplicationError, Conflict, PaymentError, ValidationError
from payments import gateway
from payments.models import PaymentSession, PaymentSessionStatus
from payments.services.attempts import (
    payment_attempt_record_attach_failure,
    payment_attempt_record_confirm_error,
    payment_attempt_record_from_intent,
)
from payments.services.cards import (
    card_token_attach,
    guest_customer_id_for_cart,
    saved_payment_method_get,
    stripe_customer_get_or_create,
)
from payments.services.common import customer_of, idempotency_key, intent_payment_method
from payments.services.mirror import stripe_object_mirror_later
from payments.services.session_status import (
    payment_session_fail,
    payment_session_sync_from_intent,
    session_status_for_intent,
)

logger = logging.getLogger(__name__)

# PaymentIntent statuses whose amount/payment method may still be changed.
UPDATABLE_STATUSES = frozenset({"requires_payment_method", "requires_confirmation", "requires_action"})
# Statuses in which Stripe lets us cancel an intent (releases an authorization, if any).
CANCELABLE_STATUSES = UPDATABLE_STATUSES | {"requires_capture"}
# The shopper's money is held or taken.
PAID_STATUSES = frozenset({"requires_capture", "succeeded", "processing"})

SETUP_FUTURE_USAGE = "on_session"  # saved cards are reused while the shopper is present


@dataclass(frozen=True, slots=True)
class PaymentSessionResult:
    session: PaymentSession
    created: bool  # a new PaymentIntent was created (201), else the cart's intent was reused (200)


@dataclass(frozen=True, slots=True)
class _IntentTarget:
    """What the cart's PaymentIntent must say, whether it is created or updated."""

    amount: int
    metadata: dict[str, str]
    payment_method_id: str | None
    save_payment_method: bool


def _metadata(*, cart_id: str, region_id: str, email: str, customer_id: str | None) -> dict[str, str]:
    """The intent's metadata; an empty value means "unset" (Stripe drops it)."""
    return {"cart_id": cart_id, "region_id": region_id, "email": email or "", "customer_id": customer_id or ""}


def _session_deactivate(*, session: PaymentSession, status: str) -> None:
    PaymentSession.objects.filter(pk=session.pk, is_active=True).update(is_active=False, status=status)


def _intent_cancel(*, cart_id: str, intent_id: str) -> dict[str, Any]:
    key = idempotency_key("cart", cart_id, "pi", intent_id, "cancel")
    intent = gateway.payment_intent_cancel(id=intent_id, idempotency_key=key)
    logger.info("payment_intent.canceled cart_id=%s payment_intent_id=%s", cart_id, intent_id)
    stripe_object_mirror_later(obj=intent)
    return intent


def _intent_replace(*, cart_id: str, session: PaymentSession, intent_id: str) -> None:
    """Cancel the session's intent at Stripe and retire the session: the next one gets a fresh intent."""
    _intent_cancel(cart_id=cart_id, intent_id=intent_id)
    _session_deactivate(session=session, status=PaymentSessionStatus.CANCELED)


def _session_fields_from_intent(intent: dict[str, Any]) -> dict[str, Any]:
    """What a session row copies from its PaymentIntent."""
    return {
        "amount": int(intent["amount"]),
        "currency_code": str(intent["currency"]).lower(),
        "client_secret": intent.get("client_secret") or "",
        "status": session_status_for_intent(intent),
    }


def _session_record(
    *,
    session: PaymentSession,
    intent: dict[str, Any],
    cart_version: int,
    save_payment_method: bool,
    stripe_customer_id: str | None,
) -> PaymentSession:
    """Store what Stripe answered, unless a request for a newer cart version already did.

    A status change (a 3-D Secure authenticated in the browser, seen on the next call) is
    counted and its attempt outcome recorded, as ``payment_session_sync_from_intent`` does.
    """
    old_status = session.status
    fields = {
        **_session_fields_from_intent(intent),
        "cart_version": cart_version,
        "save_payment_method": save_payment_method,
        "stripe_customer_id": stripe_customer_id or "",
    }
    updated = PaymentSession.objects.filter(pk=session.pk, cart_version__lte=cart_version, is_active=True).update(
        **fields
    )
    if not updated:
        raise Conflict(
            "The cart changed while its payment session was being updated. Please retry.",
            code="payment_session_stale",
        )
    session.refresh_from_db()
    if session.status != old_status:
        metrics.record_payment_session_status(
            currency=session.currency_code, amount=session.amount, old=old_status, new=session.status
        )
        payment_attempt_record_from_intent(payment_intent=intent, session=session)
    return session


def _intent_create(
    *, cart_id: str, currency_code: str, target: _IntentTarget, stripe_customer_id: str | None, n: int
) -> dict[str, Any]:
    """Create the cart's n-th intent; with a payment method, confirmed in the same call.

    Raises ``gateway.ConfirmDeclined`` when that confirm is refused (the intent exists then).
    """
    params: dict[str, Any] = {
        "amount": target.amount,
        "currency": currency_code,
        "metadata": {k: v for k, v in target.metadata.items() if v},
        "capture_method": settings.STRIPE_CAPTURE_METHOD,
        "customer": stripe_customer_id,
        "payment_method": target.payment_method_id,
        "automatic_payment_methods": settings.STRIPE_AUTOMATIC_PAYMENT_METHODS,
        "setup_future_usage": SETUP_FUTURE_USAGE
        if target.save_payment_method and settings.STRIPE_SEND_SETUP_FUTURE_USAGE
        else None,
        # A saved or tokenized card: create and confirm in one call (no separate confirm).
        "confirm": bool(target.payment_method_id),
    }
    key = idempotency_key("cart", cart_id, "pi", "create", n, params=params)
    intent = gateway.payment_intent_create(**params, idempotency_key=key)
    logger.info(
        "payment_intent.created cart_id=%s payment_intent_id=%s amount=%s", cart_id, intent["id"], target.amount
    )
    return intent


def _session_insert(
    *,
    cart_id: str,
    cart_version: int,
    intent: dict[str, Any],
    customer_id: str | None,
    stripe_customer_id: str | None,
    save_payment_method: bool,
    confirmed: bool = False,
) -> PaymentSession | None:
    """Insert the active session for a new intent; ``None`` if a concurrent request won.

    ``confirmed``: the intent was confirmed at create. The row starts ``pending`` with its first
    confirm counted, and ``_session_confirmed`` moves it to what the intent says (metrics and
    attempt outcome recorded as for a separate confirm).
    """
    fields = _session_fields_from_intent(intent)
    if confirmed:
        fields["status"] = PaymentSessionStatus.PENDING
    try:
        with transaction.atomic():
            return PaymentSession.objects.create(
                cart_id=cart_id,
                provider_id="stripe",
                payment_intent_id=intent["id"],
                **fields,
                cart_version=cart_version,
                customer_id=customer_id or "",
                stripe_customer_id=stripe_customer_id or "",
                save_payment_method=save_payment_method,
                confirm_attempts=1 if confirmed else 0,
            )
    except IntegrityError:
        return None


def _intent_update_params(*, intent: dict[str, Any], target: _IntentTarget) -> dict[str, Any]:
    """Only the fields that differ from the intent (Stripe-side state is the reference)."""
    params: dict[str, Any] = {}
    if int(intent["amount"]) != target.amount:
        params["amount"] = target.amount
    current = intent.get("metadata") or {}
    changed = {k: v for k, v in target.metadata.items() if (current.get(k) or "") != v}
    if changed:
        params["metadata"] = changed  # Stripe merges metadata; "" removes a key
    if target.payment_method_id and intent_payment_method(intent) != target.payment_method_id:
        params["payment_method"] = target.payment_method_id
    if settings.STRIPE_SEND_SETUP_FUTURE_USAGE:
        wanted = SETUP_FUTURE_USAGE if target.save_payment_method else None
        if (intent.get("setup_future_usage") or None) != wanted:
            params["setup_future_usage"] = wanted or ""
    return params


def payment_session_request_check(
    *, user_id: str | None, save_payment_method: bool, payment_method_id: str | None, card_token: str | None = None
) -> None:
    """The checks of a payment-session request that need no cart: run them before holding stock.

    400 when a guest asks to save a card or both ``card_token`` and ``payment_method_id`` are
    sent; 404 when ``payment_method_id`` is not a card saved on the caller's Stripe Customer
    (reads Stripe: call outside transactions).
    """
    if card_token and payment_method_id:
        raise ValidationError("Send either card_token or payment_method_id, not both.", param="card_token")
    if save_payment_method and not user_id:
        raise ValidationError("Sign in to save a card.", param="save_payment_method")
    if payment_method_id:
        saved_payment_method_get(user_id=user_id, payment_method_id=payment_method_id, param="payment_method_id")


def payment_session_upsert(
    *,
    cart_id: str,
    cart_version: int,
    amount: int,
    currency_code: str,
    region_id: str,
    email: str,
    customer_id: str | None,
    user_id: str | None,
    save_payment_method: bool = False,
    payment_method_id: str | None = None,
    card_token: str | None = None,
    request_checked: bool = False,
) -> PaymentSessionResult:
    """Create or refresh the cart's one PaymentIntent for ``amount`` and record it.

    ``card_token`` (a ``tok_...`` from Stripe.js ``createToken``) is attached to a Stripe
    Customer (``card_token_attach``) and then set on the intent and confirmed server-side,
    like a saved card: the result is ``authorized``, ``requires_action`` (3-D Secure, for
    ``confirmCardPayment`` in the browser) or a 402.

    Calls Stripe: never call it inside a transaction. Raises ``PaymentError`` (402) when a
    saved or tokenized card is declined, ``ProviderUnavailable`` (502/503) when Stripe cannot be
    reached (nothing is written then: a retry starts over cleanly), ``NotFound`` for a
    ``payment_method_id`` that is not the caller's, ``Conflict payment_session_stale``
    when a request for a newer cart version overtook this one.
    """
    if not request_checked:
        payment_session_request_check(
            user_id=user_id,
            save_payment_method=save_payment_method,
            payment_method_id=payment_method_id,
            card_token=card_token,
        )
    stripe_customer_id: str | None
    if card_token:
        try:
            stripe_customer_id, payment_method_id = card_token_attach(
                token=card_token, cart_id=cart_id, email=email, user_id=user_id
            )
        except ApplicationError as exc:  # a card refused on attach: no session, still an attempt
            payment_attempt_record_attach_failure(
                cart_id=cart_id, card_token=card_token, amount=amount, currency_code=currency_code, error=exc
            )
            raise
    elif user_id:
        stripe_customer_id = stripe_customer_get_or_create(user_id=user_id)
    elif payment_method_id:  # a guest's tokenized card, tried again on a replacement intent (below)
        stripe_customer_id = guest_customer_id_for_cart(cart_id=cart_id)
    else:  # a guest: the cart's own Customer once a card token made one (from its session, below)
        stripe_customer_id = None
    if payment_method_id:
        save_payment_method = False  # it is saved already (a tokenized card is on the Customer now)
    target = _IntentTarget(
        amount=amount,
        metadata=_metadata(cart_id=cart_id, region_id=region_id, email=email, customer_id=customer_id or user_id),
        payment_method_id=payment_method_id,
        save_payment_method=save_payment_method,
    )
    currency_code = currency_code.lower()

    session = PaymentSession.objects.filter(cart_id=cart_id, is_active=True).first()
    if session is not None and not user_id and stripe_customer_id is None:
        stripe_customer_id = session.stripe_customer_id or None
    if session is not None and session.cart_version > cart_version:
        raise Conflict("The cart changed since this request started. Please retry.", code="payment_session_stale")
    intent: dict[str, Any] | None = None
    if session is not None and session.payment_intent_id:
        current = gateway.payment_intent_retrieve(id=session.payment_intent_id)
        status = current.get("status")
        same_currency = str(current.get("currency", "")).lower() == currency_code
        # The intent must belong to the caller's Stripe Customer (or to none, for a guest).
        customer_ok = customer_of(current) == stripe_customer_id
        # After a decline the next attempt gets a fresh intent (the declined one is canceled):
        # every attempt starts clean, and localstripe cannot confirm a declined intent again.
        declined = session_status_for_intent(current) == PaymentSessionStatus.FAILED
        if declined:  # its decline may not have reached us yet (browser confirm, webhook late)
            payment_attempt_record_from_intent(payment_intent=current, session=session)
        if status in UPDATABLE_STATUSES and same_currency and customer_ok and not declined:
            intent = _intent_update(
                cart_id=cart_id, cart_version=cart_version, session=session, intent=current, target=target
            )
        elif status in PAID_STATUSES and int(current["amount"]) == amount and same_currency and not payment_method_id:
            # Already authorized for exactly this amount: nothing to change at Stripe.
            session = _session_record(
                session=session,
                intent=current,
                cart_version=cart_version,
                save_payment_method=session.save_payment_method,
                stripe_customer_id=session.stripe_customer_id,
            )
            payment_session_sync_from_intent(payment_intent=current)  # enqueues a card save if asked
            return PaymentSessionResult(session=session, created=False)
        elif status in CANCELABLE_STATUSES:
            _intent_replace(cart_id=cart_id, session=session, intent_id=current["id"])
        elif status == "canceled":
            _session_deactivate(session=session, status=PaymentSessionStatus.CANCELED)
        else:  # succeeded / processing for another amount: money moved, we cannot silently replace it
            raise Conflict(
                "This cart's payment was already taken for a different amount.", code="payment_session_stale"
            )

    if intent is not None:
        assert session is not None
        session = _session_record(
            session=session,
            intent=intent,
            cart_version=cart_version,
            save_payment_method=save_payment_method,
            stripe_customer_id=stripe_customer_id,
        )
        created = False
    else:
        n = PaymentSession.objects.filter(cart_id=cart_id).count() + 1
        confirmed = bool(target.payment_method_id)
        try:
            intent = _intent_create(
                cart_id=cart_id,
                currency_code=currency_code,
                target=target,
                stripe_customer_id=stripe_customer_id,
                n=n,
            )
        except gateway.ConfirmDeclined as exc:
            _created_intent_declined(
                cart_id=cart_id,
                cart_version=cart_version,
                error=exc,
                customer_id=customer_id or user_id,
                stripe_customer_id=stripe_customer_id,
            )
            raise
        stripe_object_mirror_later(obj=intent)
        inserted = _session_insert(
            cart_id=cart_id,
            cart_version=cart_version,
            intent=intent,
            customer_id=customer_id or user_id,
            stripe_customer_id=stripe_customer_id,
            save_payment_method=save_payment_method,
            confirmed=confirmed,
        )
        if inserted is None:
            # A concurrent request for this cart created the session first: keep theirs.
            winner = PaymentSession.objects.filter(cart_id=cart_id, is_active=True).first()
            if winner is None or winner.payment_intent_id != intent["id"]:
                _intent_cancel(cart_id=cart_id, intent_id=intent["id"])
            if winner is None:
                raise Conflict(
                    "Another payment session request for this cart is in progress.", code="payment_session_stale"
                )
            return PaymentSessionResult(session=winner, created=False)
        session = inserted
        created = True
        logger.info("payment_session.created payment_session_id=%s cart_id=%s", session.id, cart_id)
        metrics.record_payment_session_created(currency=session.currency_code)
        if confirmed:
            return PaymentSessionResult(session=_session_confirmed(session=session, intent=intent), created=True)

    if payment_method_id and intent.get("status") == "requires_confirmation":
        session = _session_confirm(session=session, cart_id=cart_id, intent_id=intent["id"])
    return PaymentSessionResult(session=session, created=created)


def _intent_update(
    *, cart_id: str, cart_version: int, session: PaymentSession, intent: dict[str, Any], target: _IntentTarget
) -> dict[str, Any]:
    params = _intent_update_params(intent=intent, target=target)
    if not params:
        return intent
    # A saved card may be tried again on the same cart version: its attempt number keeps the
    # key of each try distinct (a replay would return the earlier try's result). The key names
    # the intent: after a decline the same update is sent to the replacement intent, and a key
    # reused for another intent is a 400 idempotency_error at Stripe.
    attempt = session.confirm_attempts if target.payment_method_id else 0
    key = idempotency_key(
        "cart", cart_id, "pi", intent["id"], f"v{cart_version}", "update", params={**params, "attempt": attempt}
    )
    updated = gateway.payment_intent_update(id=intent["id"], **params, idempotency_key=key)
    logger.info(
        "payment_intent.updated cart_id=%s payment_intent_id=%s fields=%s", cart_id, intent["id"], sorted(params)
    )
    stripe_object_mirror_later(obj=updated)
    return updated


def _session_confirm(*, session: PaymentSession, cart_id: str, intent_id: str) -> PaymentSession:
    """Confirm server-side with the saved (or just tokenized) card already set on the intent."""
    PaymentSession.objects.filter(pk=session.pk).update(confirm_attempts=F("confirm_attempts") + 1)
    session.refresh_from_db(fields=["confirm_attempts"])
    key = idempotency_key("cart", cart_id, "pi", intent_id, "confirm", session.confirm_attempts)
    try:
        intent = gateway.payment_intent_confirm(id=intent_id, idempotency_key=key)
    except PaymentError as exc:
        failed = payment_session_fail(payment_intent_id=intent_id)
        logger.info("payment_intent.declined cart_id=%s payment_intent_id=%s code=%s", cart_id, intent_id, exc.code)
        _declined_attempt_record(session=session, intent_id=intent_id)
        if failed is not None:
            session.refresh_from_db()
        raise
    except ApplicationError as exc:
        payment_attempt_record_confirm_error(session=session, payment_intent_id=intent_id, error=exc)
        raise
    logger.info(
        "payment_intent.confirmed cart_id=%s payment_intent_id=%s status=%s", cart_id, intent_id, intent.get("status")
    )
    stripe_object_mirror_later(obj=intent)
    payment_session_sync_from_intent(payment_intent=intent)
    session.refresh_from_db()
    return session


def _session_confirmed(*, session: PaymentSession, intent: dict[str, Any]) -> PaymentSession:
    """The session of an intent confirmed at create: record what the confirm did."""
    logger.info(
        "payment_intent.confirmed cart_id=%s payment_intent_id=%s status=%s",
        session.cart_id,
        intent["id"],
        intent.get("status"),
    )
    payment_session_sync_from_intent(payment_intent=intent)
    session.refresh_from_db()
    return session


def _created_intent_declined(
    *,
    cart_id: str,
    cart_version: int,
    error: gateway.ConfirmDeclined,
    customer_id: str | None,
    stripe_customer_id: str | None,
) -> None:
    """A create-and-confirm was declined: keep its intent as the cart's (failed) session, as a
    separate confirm's decline does, so the next attempt replaces it and the decline is counted.

    Reads the intent from Stripe (the decline path only). If Stripe does not name it, or cannot be
    read now, nothing is recorded here; the ``payment_intent.payment_failed`` webhook has it.
    """
    logger.info(
        "payment_intent.declined cart_id=%s payment_intent_id=%s code=%s", cart_id, error.payment_intent_id, error.code
    )
    if not error.payment_intent_id:
        return
    try:
        intent = gateway.payment_intent_retrieve(id=error.payment_intent_id)
    except ApplicationError as exc:
        logger.warning(
            "payment_attempt.decline_unread cart_id=%s payment_intent_id=%s code=%s",
            cart_id,
            error.payment_intent_id,
            exc.code,
        )
        return
    stripe_object_mirror_later(obj=intent)
    session = _session_insert(
        cart_id=cart_id,
        cart_version=cart_version,
        intent=intent,
        customer_id=customer_id,
        stripe_customer_id=stripe_customer_id,
        save_payment_method=False,
        confirmed=True,
    )
    if session is None:  # a concurrent request holds the cart's session: ours stays a declined intent
        return
    payment_session_fail(payment_intent_id=intent["id"])
    payment_attempt_record_from_intent(payment_intent=intent, session=session)


def _declined_attempt_record(*, session: PaymentSession, intent_id: str) -> None:
    """Record a server-side confirm's decline from the intent (its failed charge names the fact,
    as in the webhook that follows). Reads Stripe: outside transactions. If Stripe cannot be read
    now, the webhook, the next payment-session call or the sweep records it."""
    try:
        intent = gateway.payment_intent_retrieve(id=intent_id)
    except ApplicationError as exc:
        logger.warning(
            "payment_attempt.decline_unread cart_id=%s payment_intent_id=%s code=%s",
            session.cart_id,
            intent_id,
            exc.code,
        )
        return
    payment_attempt_record_from_intent(payment_intent=intent, session=session)


def payment_session_error_releases_stock(error: ApplicationError) -> bool:
    """Whether the caller should drop the cart's stock hold after ``payment_session_upsert`` failed.

    Not for ``payment_session_stale``: a newer request for the same cart holds the stock now.
    """
    return error.code != "payment_session_stale"
