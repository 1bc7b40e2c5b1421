"""payments services: payment sessions (one PaymentIntent per cart), Stripe Customers, saved cards.

Callers import from here (``from payments import services``); see docs/payments.md.

* ``sessions``: ``payment_session_upsert`` / ``_request_check``: the cart's PaymentIntent at Stripe
* ``session_status``: ``payment_session_sync_from_intent`` / ``_fail`` / ``_release``: database only
* ``cards``: ``stripe_customer_get_or_create``, ``payment_method_detach``, ``payment_method_save_from_intent``,
  ``card_token_attach`` (a Stripe.js card token on the customer's or the guest cart's Customer)
* ``attempts``: ``payment_attempt_record`` and its callers: every payment attempt outcome, once
* ``mirror``: ``stripe_object_mirror_later`` / ``stripe_object_mirror``: the dj-stripe copy, in a task
* ``common``: ``idempotency_key`` and small readers of Stripe objects
"""

from payments.services.attempts import (
    payment_attempt_record,
    payment_attempt_record_attach_failure,
    payment_attempt_record_from_intent,
)
from payments.services.cards import (
    card_token_attach,
    guest_customer_id_for_cart,
    payment_method_detach,
    payment_method_save_from_intent,
    saved_payment_method_get,
    stripe_customer_get_or_create,
    stripe_customer_id_for,
)
from payments.services.common import idempotency_key
from payments.services.mirror import stripe_object_mirror, stripe_object_mirror_later
from payments.services.session_status import (
    payment_session_fail,
    payment_session_release,
    payment_session_sync_from_intent,
    session_status_for_intent,
)
from payments.services.sessions import (
    PaymentSessionResult,
    payment_session_error_releases_stock,
    payment_session_request_check,
    payment_session_upsert,
)

__all__ = [
    "PaymentSessionResult",
    "card_token_attach",
    "guest_customer_id_for_cart",
    "idempotency_key",
    "payment_method_detach",
    "payment_attempt_record",
    "payment_attempt_record_attach_failure",
    "payment_attempt_record_from_intent",
    "payment_method_save_from_intent",
    "payment_session_error_releases_stock",
    "payment_session_fail",
    "payment_session_release",
    "payment_session_request_check",
    "payment_session_sync_from_intent",
    "payment_session_upsert",
    "saved_payment_method_get",
    "session_status_for_intent",
    "stripe_customer_get_or_create",
    "stripe_customer_id_for",
    "stripe_object_mirror",
    "stripe_object_mirror_later",
]
