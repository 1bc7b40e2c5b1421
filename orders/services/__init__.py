"""Order writes. Callers import from here (``from orders import services``); see docs/orders.md.

* ``core``: ``order_lock``, ``order_transition`` (status / fulfillment_status under the row
  lock, one OrderEvent each), ``InvalidTransition``, and the ledger helpers the others share
* ``placement``: ``order_complete_cart`` (store API) and ``order_place`` (store API and
  webhooks): a paid cart becomes its one order, exactly once
* ``incidents``: paid but no order of its own (out of stock at completion;
  ``order_orphan_payment_release`` for a second PaymentIntent of a completed cart): the
  money is released, the session retired and a CheckoutIncident filed
* ``payment_ops``: staff ``order_payment_capture`` / ``_cancel`` (restocks an unfulfilled
  order) / ``_refund``; an operation whose Stripe outcome is unknown stays pending and
  ``payment_operation_resume`` / ``payment_operations_resume`` (beat) finish it with the same key
* ``cancellation``: ``order_cancel_released`` (staff cancel, or Stripe released the authorization)
* ``sync``: ``order_payment_sync`` (ledger and payment_status follow Stripe),
  ``order_dispute_record``
* ``confirmation``: ``order_confirmation_send``, ``order_confirmations_resend`` (beat)
* ``notifications``: the shipped / delivered / canceled / refunded emails, recorded in the
  transaction of their fact and sent once: ``order_notification_record``,
  ``order_refund_notifications_record``, ``order_notification_send``,
  ``order_notifications_resend`` (beat), ``notification_key``
"""

from orders.services.confirmation import order_confirmation_send, order_confirmations_resend
from orders.services.core import ORDER_COUNTER, InvalidTransition, order_lock, order_transition
from orders.services.incidents import checkout_incident_release_retry, order_orphan_payment_release
from orders.services.notifications import (
    notification_key,
    order_notification_record,
    order_notification_send,
    order_notifications_resend,
    order_refund_notifications_record,
)
from orders.services.payment_ops import (
    PaymentOperationPending,
    order_payment_cancel,
    order_payment_capture,
    order_payment_refund,
    payment_operation_resume,
    payment_operations_resume,
)
from orders.services.placement import (
    AUTHORIZATION_VALIDITY,
    AUTHORIZED_STATUSES,
    order_complete_cart,
    order_place,
)
from orders.services.sync import order_dispute_record, order_payment_sync

__all__ = [
    "AUTHORIZATION_VALIDITY",
    "AUTHORIZED_STATUSES",
    "ORDER_COUNTER",
    "InvalidTransition",
    "PaymentOperationPending",
    "checkout_incident_release_retry",
    "notification_key",
    "order_complete_cart",
    "order_confirmation_send",
    "order_confirmations_resend",
    "order_dispute_record",
    "order_lock",
    "order_notification_record",
    "order_notification_send",
    "order_notifications_resend",
    "order_orphan_payment_release",
    "order_payment_cancel",
    "order_payment_capture",
    "order_payment_refund",
    "order_payment_sync",
    "order_place",
    "order_refund_notifications_record",
    "order_transition",
    "payment_operation_resume",
    "payment_operations_resume",
]
