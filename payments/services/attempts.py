"""Payment attempts: every outcome of a shopper's try to pay, recorded once (``PaymentAttempt``).

An attempt ends at one of two stages:

* ``attach``: a Stripe.js card token refused when it is attached to a Stripe Customer (no
  PaymentIntent is confirmed, no session may exist): ``payment_attempt_record_attach_failure``;
* ``confirm``: the outcome of a PaymentIntent's confirmation, read from the intent itself
  (``payment_attempt_record_from_intent``), whoever reports it: the server-side confirm of
  the payment-session call, ``complete`` (through ``payment_session_sync_from_intent``), a
  ``payment_intent.*`` webhook or the reconciliation sweep (``webhooks.reconciliation``).

Each fact has one key (``attempt_key_*``; the only place they are spelled): a success and a
3-D Secure request once per PaymentIntent, a decline once per failed charge (Stripe's
``last_payment_error.charge``), a refused token once per token. Recording the same fact again
(webhook replays, the storefront and Stripe both reporting it) inserts nothing and counts
nothing. The row and the metric (``common.metrics.record_payment_attempt``, deferred to commit)
are written by one function, ``payment_attempt_record``, so ``/metrics`` and the dashboard
count the same facts. An outcome we do not know (Stripe unreachable, ``ProviderUnavailable``)
is not an attempt outcome and is not recorded.

DB only: safe inside the caller's transaction (one ``INSERT ... ON CONFLICT DO NOTHING``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connection
from django.utils import timezone

from common import metrics
from common.errors import ApplicationError, PaymentError, ProviderUnavailable
from payments.models import PaymentAttempt, PaymentAttemptOutcome, PaymentAttemptStage, PaymentSession
from payments.services.common import id_of

logger = logging.getLogger(__name__)

PAID_INTENT_STATUSES = frozenset({"requires_capture", "succeeded"})


# --- Keys: one name per exactly-once fact ---------------------------------------------------


def attempt_key_attach(*, card_token: str) -> str:
    """A card token is attached once (a token is single-use at Stripe)."""
    return f"attempt:attach:{card_token}"


def attempt_key_succeeded(*, payment_intent_id: str) -> str:
    return f"attempt:{payment_intent_id}:succeeded"


def attempt_key_requires_action(*, payment_intent_id: str) -> str:
    return f"attempt:{payment_intent_id}:requires_action"


def attempt_key_declined(*, payment_intent_id: str, failure_id: str) -> str:
    """``failure_id``: the failed charge, or the error code when there is no charge (failed 3-D Secure)."""
    return f"attempt:{payment_intent_id}:declined:{failure_id}"


def attempt_key_confirm_error(*, payment_intent_id: str, confirm_attempt: int) -> str:
    """A server-side confirm refused for a reason other than the card (its n-th confirm of the intent)."""
    return f"attempt:{payment_intent_id}:error:{confirm_attempt}"


# --- Recording ------------------------------------------------------------------------------

_INSERT = """
INSERT INTO {table} (cart_id, payment_session_id, payment_intent_id, stage, outcome, decline_code, amount,
                     currency_code, idempotency_key, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id
"""


def payment_attempt_record(
    *,
    cart_id: str,
    stage: str,
    outcome: str,
    amount: int,
    currency_code: str,
    idempotency_key: str,
    payment_session_id: str | None = None,
    payment_intent_id: str = "",
    decline_code: str = "",
) -> bool:
    """Insert the attempt unless its key exists and, if inserted, count it; returns whether it was new."""
    currency_code = currency_code.lower()
    decline_code = decline_code[:64]
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT.format(table=PaymentAttempt._meta.db_table),
            [
                cart_id,
                payment_session_id,
                payment_intent_id,
                stage,
                outcome,
                decline_code,
                amount,
                currency_code,
                idempotency_key,
                timezone.now(),
            ],
        )
        inserted = cursor.fetchone() is not None
    if inserted:
        metrics.record_payment_attempt(stage=stage, outcome=outcome, currency=currency_code, code=decline_code)
        logger.info(
            "payment_attempt.recorded cart_id=%s payment_intent_id=%s stage=%s outcome=%s decline_code=%s",
            cart_id,
            payment_intent_id,
            stage,
            outcome,
            decline_code,
        )
    return inserted


def _intent_outcome(payment_intent: dict[str, Any]) -> tuple[str, str, str] | None:
    """(outcome, key, decline code) of what a PaymentIntent shows, or None while it shows none."""
    intent_id = str(payment_intent.get("id") or "")
    status = payment_intent.get("status")
    if status in PAID_INTENT_STATUSES:
        return PaymentAttemptOutcome.SUCCEEDED, attempt_key_succeeded(payment_intent_id=intent_id), ""
    if status == "requires_action":
        return PaymentAttemptOutcome.REQUIRES_ACTION, attempt_key_requires_action(payment_intent_id=intent_id), ""
    error = payment_intent.get("last_payment_error")
    if status == "requires_payment_method" and error:
        code = str(error.get("code") or "payment_failed")
        failure_id = id_of(error.get("charge")) or code
        decline_code = str(error.get("decline_code") or code)
        return (
            PaymentAttemptOutcome.DECLINED,
            attempt_key_declined(payment_intent_id=intent_id, failure_id=failure_id),
            decline_code,
        )
    return None


def payment_attempt_record_from_intent(
    *, payment_intent: dict[str, Any], session: PaymentSession | None = None
) -> bool:
    """Record the confirm outcome a PaymentIntent shows (succeeded, declined, requires_action), once.

    ``session``: the intent's session when the caller has it (saves a query). An intent of no
    session of ours, or one showing no outcome (not confirmed yet, processing, canceled), records
    nothing. Returns whether a row was inserted.
    """
    found = _intent_outcome(payment_intent)
    if found is None:
        return False
    intent_id = str(payment_intent.get("id") or "")
    if session is None:
        session = PaymentSession.objects.filter(payment_intent_id=intent_id).first()
        if session is None:
            return False
    outcome, key, decline_code = found
    return payment_attempt_record(
        cart_id=session.cart_id,
        stage=PaymentAttemptStage.CONFIRM,
        outcome=outcome,
        amount=int(payment_intent.get("amount") or session.amount),
        currency_code=str(payment_intent.get("currency") or session.currency_code),
        idempotency_key=key,
        payment_session_id=session.pk,
        payment_intent_id=intent_id,
        decline_code=decline_code,
    )


def payment_attempt_record_attach_failure(
    *, cart_id: str, card_token: str, amount: int, currency_code: str, error: ApplicationError
) -> bool:
    """A card token could not be attached: a decline (``PaymentError``) or another definite refusal.

    Stripe unreachable (``ProviderUnavailable``, the outcome unknown) records nothing.
    """
    if isinstance(error, ProviderUnavailable):
        return False
    if isinstance(error, PaymentError):
        outcome = (
            PaymentAttemptOutcome.REQUIRES_ACTION
            if error.code == "payment_requires_action"
            else PaymentAttemptOutcome.DECLINED
        )
    else:
        outcome = PaymentAttemptOutcome.ERROR
    return payment_attempt_record(
        cart_id=cart_id,
        stage=PaymentAttemptStage.ATTACH,
        outcome=outcome,
        amount=amount,
        currency_code=currency_code,
        idempotency_key=attempt_key_attach(card_token=card_token),
        decline_code=error.code,
    )


def payment_attempt_record_confirm_error(
    *, session: PaymentSession, payment_intent_id: str, error: ApplicationError
) -> bool:
    """A server-side confirm refused for a reason other than the card (not ``ProviderUnavailable``)."""
    if isinstance(error, (ProviderUnavailable, PaymentError)):
        return False
    return payment_attempt_record(
        cart_id=session.cart_id,
        stage=PaymentAttemptStage.CONFIRM,
        outcome=PaymentAttemptOutcome.ERROR,
        amount=session.amount,
        currency_code=session.currency_code,
        idempotency_key=attempt_key_confirm_error(
            payment_intent_id=payment_intent_id, confirm_attempt=session.confirm_attempts
        ),
        payment_session_id=session.pk,
        payment_intent_id=payment_intent_id,
        decline_code=error.code,
    )
