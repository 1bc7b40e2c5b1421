"""The three order state machines as data (pure; no database). Drawn in docs/orders.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orders.models import FulfillmentStatus, OrderStatus, PaymentStatus

if TYPE_CHECKING:
    from orders.models import Order
    from payments.ledger import LedgerTotals

# pending -> completed happens by itself (``order_completable``): delivered, and the money settled.
ORDER_STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.COMPLETED, OrderStatus.CANCELED}),
    OrderStatus.COMPLETED: frozenset({OrderStatus.ARCHIVED}),
    OrderStatus.CANCELED: frozenset({OrderStatus.ARCHIVED}),
    OrderStatus.ARCHIVED: frozenset(),
}

_P = PaymentStatus
# Forward moves are what we and the shopper do; backward ones are what Stripe may report later
# and the ledger must follow: a refund that fails after succeeding (refunded -> partially
# refunded -> captured), funds reinstated when a dispute is won (the withdrawn funds count as
# returned to the cardholder while they are gone).
PAYMENT_STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    _P.NOT_PAID: frozenset({_P.REQUIRES_ACTION, _P.AUTHORIZED, _P.CAPTURED, _P.CANCELED}),
    _P.REQUIRES_ACTION: frozenset({_P.NOT_PAID, _P.AUTHORIZED, _P.CAPTURED, _P.CANCELED}),
    _P.AUTHORIZED: frozenset({_P.PARTIALLY_CAPTURED, _P.CAPTURED, _P.CANCELED}),
    # One capture per PaymentIntent: the uncaptured rest of a partial capture is released.
    _P.PARTIALLY_CAPTURED: frozenset({_P.PARTIALLY_REFUNDED, _P.REFUNDED}),
    _P.CAPTURED: frozenset({_P.PARTIALLY_REFUNDED, _P.REFUNDED}),
    _P.PARTIALLY_REFUNDED: frozenset({_P.REFUNDED, _P.CAPTURED, _P.PARTIALLY_CAPTURED}),
    _P.REFUNDED: frozenset({_P.PARTIALLY_REFUNDED, _P.CAPTURED, _P.PARTIALLY_CAPTURED}),
    _P.CANCELED: frozenset(),
}

_F = FulfillmentStatus
FULFILLMENT_STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    _F.NOT_FULFILLED: frozenset({_F.FULFILLED, _F.CANCELED}),
    _F.FULFILLED: frozenset({_F.SHIPPED, _F.CANCELED}),
    _F.SHIPPED: frozenset({_F.DELIVERED}),
    _F.DELIVERED: frozenset(),
    _F.CANCELED: frozenset(),
}

# Payment states with nothing left to capture or authorize: the money was taken (all of it, or
# part with the rest released), whatever was refunded since. An order delivered in one of them
# is ``completed``. Not ``canceled`` (nothing was ever charged: staff must look at it) nor
# ``authorized`` (the capture is still to come; it completes the order when it is recorded).
SETTLED_PAYMENT_STATUSES: frozenset[str] = frozenset(
    {_P.PARTIALLY_CAPTURED, _P.CAPTURED, _P.PARTIALLY_REFUNDED, _P.REFUNDED}
)


def order_completable(*, order: Order) -> bool:
    """Whether a pending order is done: delivered, and its money settled (``SETTLED_PAYMENT_STATUSES``)."""
    return (
        order.status == OrderStatus.PENDING
        and order.fulfillment_status == _F.DELIVERED
        and order.payment_status in SETTLED_PAYMENT_STATUSES
    )


TRANSITIONS: dict[str, dict[str, frozenset[str]]] = {
    "status": ORDER_STATUS_TRANSITIONS,
    "payment_status": PAYMENT_STATUS_TRANSITIONS,
    "fulfillment_status": FULFILLMENT_STATUS_TRANSITIONS,
}


def transition_allowed(*, field: str, current: str, target: str) -> bool:
    return target in TRANSITIONS[field].get(current, frozenset())


def payment_status_for(
    *,
    authorized: int,
    captured: int,
    voided: int,
    refunded: int,
    disputed: int = 0,
    requires_action: bool = False,
) -> str:
    """The payment status the ledger amounts describe (the ledger is the truth, this is its summary).

    ``disputed`` (funds a dispute withdrew and Stripe has not reinstated) is money back with the
    cardholder, like a refund: it counts towards partially_refunded / refunded.
    """
    returned = refunded + disputed
    if captured > 0 and returned > 0:
        return _P.REFUNDED if returned >= captured else _P.PARTIALLY_REFUNDED
    if captured > 0:
        return _P.PARTIALLY_CAPTURED if captured < authorized else _P.CAPTURED
    if authorized > 0:
        return _P.CANCELED if voided >= authorized else _P.AUTHORIZED
    return _P.REQUIRES_ACTION if requires_action else _P.NOT_PAID


def payment_status_for_totals(totals: LedgerTotals) -> str:
    """``payment_status_for`` of a PaymentIntent's ledger totals."""
    return payment_status_for(
        authorized=totals.authorized,
        captured=totals.captured,
        voided=totals.voided,
        refunded=totals.refunded,
        disputed=totals.disputed,
    )


def transition_path(*, field: str, current: str, target: str) -> list[str] | None:
    """The shortest sequence of allowed moves from ``current`` to ``target`` (excluding ``current``).

    Reconciliation can learn several facts at once (captured *and* refunded): it walks the
    machine step by step, so each step is a legal move with its own event. None if unreachable.
    """
    if current == target:
        return []
    table = TRANSITIONS[field]
    paths: dict[str, list[str]] = {current: []}
    frontier = [current]
    while frontier:
        nxt: list[str] = []
        for state in frontier:
            for candidate in sorted(table.get(state, frozenset())):
                if candidate in paths:
                    continue
                paths[candidate] = [*paths[state], candidate]
                if candidate == target:
                    return paths[candidate]
                nxt.append(candidate)
        frontier = nxt
    return None
