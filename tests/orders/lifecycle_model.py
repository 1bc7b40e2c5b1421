"""A seeded random walk over the money of one order after the sale (issue 10, scope 3).

``Walk`` places one order at a time (a real cart, a real PaymentIntent in the Stripe stand-in
confirmed with a test card, ``orders.services.order_place``), then runs a random sequence of
steps on it: staff operations (with faults armed on their Stripe call), things that happen at
Stripe (dashboard, refund failures, disputes, expiry), webhook deliveries (held in the stand-in,
delivered signed through Django's test client in a random order, with duplicates and drops),
reconciliation and resumes. After every step it compares our ledger with Stripe's truth (what
the stand-in says); after a final reconciliation it asks for equality.

Nothing of ours is mocked: the only fake is the Stripe stand-in, driven through its control API.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.test import override_settings
from django.utils import timezone

from catalog.models import StockLevel
from common.errors import ApplicationError
from orders import fulfillment, services
from orders.models import Order
from orders.transitions import payment_status_for_totals
from payments import disputes as dispute_selectors
from payments import gateway, ledger
from payments.models import LedgerEntryKind, LedgerEntryStatus
from tests.orders.conftest import make_cart, pay_cart
from tests.plugins.localstripe import LocalStripeError
from webhooks import reconciliation
from webhooks.models import WebhookEvent, WebhookEventStatus

WEBHOOK_PATH = "/webhooks/stripe"

# Refusals a staff operation may answer in some state of the walk (anything else is a finding).
STAFF_REFUSALS = frozenset(
    {
        "invalid_transition",
        "nothing_to_capture",
        "capture_amount_invalid",
        "nothing_to_refund",
        "refund_amount_invalid",
        "dispute_open",
        "payment_operation_in_progress",
        "payment_operation_pending",
        "order_changed",
        "authorization_expired",
        "payment_provider_error",  # Stripe refused: our ledger lagged behind Stripe (not synced yet)
    }
)
FULFIL_REFUSALS = frozenset({"dispute_open", "payment_not_live", "invalid_transition"})

# step name -> weight
STEP_WEIGHTS: dict[str, int] = {
    "staff_capture_full": 6,
    "staff_capture_partial": 5,
    "staff_capture_invalid": 1,
    "staff_refund_partial": 7,
    "staff_refund_rest": 4,
    "staff_refund_invalid": 1,
    "staff_cancel": 3,
    "dashboard_capture": 2,
    "dashboard_refund": 3,
    "dashboard_cancel": 1,
    "refund_fail": 3,
    "dispute_open": 2,
    "dispute_update": 1,
    "dispute_won": 1,
    "dispute_lost": 1,
    "authorization_expire": 1,
    "fulfil": 1,
    "deliver": 8,
    "reconcile": 3,
    "reconcile_sweep": 1,
    "resume": 3,
    "arm_fault": 7,
}

AUTHORIZED_STEPS = (
    "staff_capture_full",
    "staff_capture_partial",
    "staff_capture_invalid",
    "staff_cancel",
    "dashboard_capture",
    "dashboard_cancel",
    "authorization_expire",
)
CAPTURED_STEPS = ("staff_refund_partial", "staff_refund_rest", "staff_refund_invalid", "dashboard_refund")
OPEN_DISPUTE_STATUSES = ("warning_needs_response", "needs_response", "warning_under_review", "under_review")

FAULT_STATUSES: tuple[Any, ...] = (500, 502, 503, 429, "reset")


class Divergence(AssertionError):
    pass


@dataclass
class StripeView:
    status: str
    charge: dict[str, Any]
    refunds: list[dict[str, Any]]  # every refund of the charge (release included)
    disputes: list[dict[str, Any]]

    @property
    def authorized(self) -> int:
        return int(self.charge.get("amount") or 0) if self.charge.get("status") == "succeeded" else 0

    @property
    def captured(self) -> int:
        return int(self.charge.get("amount_captured") or 0)

    def refund(self, refund_id: str) -> dict[str, Any] | None:
        return next((r for r in self.refunds if r["id"] == refund_id), None)

    def key(self) -> tuple[Any, ...]:
        """What Stripe did (for 'a refusal changed nothing')."""
        return (
            self.status,
            self.captured,
            tuple(sorted((r["id"], r["status"], r["amount"]) for r in self.refunds)),
            tuple(sorted((d["id"], d["status"]) for d in self.disputes)),
        )


@dataclass
class OrderRun:
    index: int
    order_id: str
    pi_id: str
    variant_id: str
    quantity: int
    stock_before: int  # on hand before the order was placed
    stock_after: int  # on hand right after placement
    retries: int
    resume_after: timedelta
    release_id: str | None = None  # the refund object showing the released rest of the authorization
    dashboard_refund_ids: set[str] = field(default_factory=set)
    dashboard_capture_amounts: list[int] = field(default_factory=list)
    dispute_id: str | None = None
    fulfilled: bool = False
    armed: tuple[Any, str, int] | None = None  # (status, when, count) for the next staff op
    queue: list[dict[str, Any]] = field(default_factory=list)  # events pulled from the stand-in, not delivered yet
    delivered: list[dict[str, Any]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    placed_at: datetime = field(default_factory=timezone.now)


def _money(totals: ledger.LedgerTotals) -> tuple[int, ...]:
    return (totals.authorized, totals.captured, totals.voided, totals.refunded, totals.refund_pending, totals.disputed)


class Walk:
    def __init__(
        self,
        *,
        seed: int,
        localstripe: Any,
        settings: Any,
        client: Any,
        capture_on_commit: Any,
        shop: Any,
        webhook_secret: str,
        weights: dict[str, int] | None = None,
    ) -> None:
        self.weights = {**STEP_WEIGHTS, **(weights or {})}
        self.seed = seed
        self.rng = random.Random(seed)
        self.ls = localstripe
        self.settings = settings
        self.client = client
        self.capture_on_commit = capture_on_commit
        self.shop = shop
        self.webhook_secret = webhook_secret
        self.counts: Counter[str] = Counter()
        self.run: OrderRun | None = None
        self.view: StripeView | None = None
        self.history: list[str] = []  # one line per finished order
        self.step_no = 0
        # Per-order settings: one override at a time, replaced for each order. (Setting them
        # through pytest-django's ``settings`` fixture nests one more override per assignment:
        # thousands of orders overflow the stack.)
        self._override: override_settings | None = None

    def close(self) -> None:
        """Undo the per-order settings (call once the walk is over)."""
        if self._override is not None:
            self._override.disable()
            self._override = None
        gateway.reset_client()

    def _order_settings(self, **values: Any) -> None:
        if self._override is not None:
            self._override.disable()
        self._override = override_settings(**values)
        self._override.enable()

    # --- Reporting ---------------------------------------------------------------------

    def fail(self, message: str) -> None:
        run = self.run
        lines = [
            f"LIFECYCLE DIVERGENCE (replay with LIFECYCLE_SEED={self.seed} LIFECYCLE_STEPS={self.step_no}): {message}",
        ]
        if run is not None:
            lines.append(
                f"order #{run.index} {run.order_id} pi={run.pi_id} retries={run.retries} "
                f"resume_after={run.resume_after} steps:"
            )
            lines.extend(f"  {line}" for line in run.log)
        if self.view is not None:
            lines.append(
                f"stripe: status={self.view.status} authorized={self.view.authorized} captured={self.view.captured}"
            )
            lines.extend(
                f"  refund {r['id']} {r['amount']} {r['status']} key={(r.get('metadata') or {}).get('ledger_key')}"
                for r in self.view.refunds
            )
            lines.extend(f"  dispute {d['id']} {d['amount']} {d['status']}" for d in self.view.disputes)
        if run is not None:
            lines.append("ledger:")
            lines.extend(
                f"  {e.kind} {e.amount} {e.status} key={e.idempotency_key} obj={e.stripe_object_id}"
                for e in ledger.ledger_entries(payment_intent_id=run.pi_id)
            )
            order = Order.objects.get(pk=run.order_id)
            lines.append(f"order: {order.status} / {order.payment_status} / {order.fulfillment_status}")
        raise Divergence("\n".join(lines))

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            self.fail(message)

    def note(self, text: str) -> None:
        assert self.run is not None
        self.run.log.append(f"{self.step_no}: {text}")

    # --- Orders ------------------------------------------------------------------------

    def place(self, index: int) -> OrderRun:
        rng = self.rng
        started = timezone.now()
        self.ls.faults_clear()
        if index > 1:
            # The previous order is done (reconciled, checked): empty the stand-in's store so
            # its writes stay fast (it pickles the whole store after every write).
            self.ls.flush()
        self.ls.webhooks_drop_held()
        retries = 2 if rng.random() < 0.1 else 0
        resume_after = timedelta(0) if rng.random() < 0.75 else timedelta(hours=1)
        self._order_settings(STRIPE_MAX_NETWORK_RETRIES=retries, PAYMENT_OPERATION_RESUME_AFTER=resume_after)
        gateway.reset_client()
        quantity = rng.randint(1, 3)
        variant = self.shop.variant(stock=10, price=rng.randint(3, 60) * 100 + rng.choice((0, 1, 99)))
        stock_before = StockLevel.objects.get(variant_id=variant.id).on_hand
        cart_id = make_cart(self.shop, [(variant, quantity)])
        paid = pay_cart(self.ls, cart_id)
        order, created = services.order_place(
            cart_id=cart_id, payment_intent_id=paid.payment_intent_id, actor="customer"
        )
        assert created
        run = OrderRun(
            index=index,
            order_id=order.id,
            pi_id=paid.payment_intent_id,
            variant_id=variant.id,
            quantity=quantity,
            stock_before=stock_before,
            stock_after=StockLevel.objects.get(variant_id=variant.id).on_hand,
            retries=retries,
            resume_after=resume_after,
            placed_at=started,
        )
        self.run = run
        run.log.append(f"placed total={order.total} qty={quantity} retries={retries} resume_after={resume_after}")
        self.counts["order_placed"] += 1
        self.check(run.stock_after == stock_before - quantity, "placement did not take the stock")
        self.observe()
        return run

    def _weights_now(self) -> list[float]:
        """The step weights for the current state: steps Stripe would refuse stay possible, rarer."""
        run, view = self.run, self.view
        assert run is not None and view is not None
        authorized = view.status == "requires_capture"
        captured = view.captured > 0
        dispute_open = any(d["status"] in OPEN_DISPUTE_STATUSES for d in view.disputes)
        refunded = any(r["status"] == "succeeded" for r in self.customer_refunds(view))
        factor = {
            **dict.fromkeys(AUTHORIZED_STEPS, 1.0 if authorized else 0.15),
            **dict.fromkeys(CAPTURED_STEPS, 1.0 if captured else 0.15),
            **dict.fromkeys(("dispute_update", "dispute_won", "dispute_lost"), 3.0 if dispute_open else 0.0),
            "dispute_open": (1.0 if captured and run.dispute_id is None else 0.0),
            "refund_fail": 1.0 if refunded else 0.0,
            "resume": 3.0 if ledger.ledger_entries_pending(payment_intent_id=run.pi_id) else 0.3,
        }
        return [self.weights[name] * factor.get(name, 1.0) for name in self.weights]

    def walk_order(self, steps: int) -> None:
        names = list(self.weights)
        for _ in range(steps):
            self.step_no += 1
            name = self.rng.choices(names, self._weights_now())[0]
            getattr(self, f"step_{name}")()
            self.observe()
        self.finish()

    # --- Reading the truth -------------------------------------------------------------

    def stripe_view(self) -> StripeView:
        assert self.run is not None
        pi = gateway.payment_intent_retrieve(id=self.run.pi_id)
        charge = pi.get("latest_charge") or {}
        if isinstance(charge, str):
            charge = gateway.charge_retrieve(id=charge)
        refunds = gateway.refund_list(payment_intent=self.run.pi_id)
        disputes: list[dict[str, Any]] = []
        if charge.get("disputed") or self.run.dispute_id:
            disputes = self.ls.request("GET", f"/v1/disputes?payment_intent={self.run.pi_id}&limit=100")["data"]
        return StripeView(status=pi["status"], charge=charge, refunds=refunds, disputes=disputes)

    def customer_refunds(self, view: StripeView) -> list[dict[str, Any]]:
        assert self.run is not None
        return [r for r in view.refunds if r["id"] != self.run.release_id]

    def observe(self) -> None:
        """Re-read Stripe and the ledger; check the invariants that hold after every step."""
        run = self.run
        assert run is not None
        view = self.view = self.stripe_view()
        rows = list(ledger.ledger_entries(payment_intent_id=run.pi_id))
        totals = ledger.ledger_totals(payment_intent_id=run.pi_id)
        order = Order.objects.get(pk=run.order_id)

        # Which Stripe refund is the released rest of the authorization (no metadata, not a dashboard refund).
        unkeyed = [
            r
            for r in view.refunds
            if not (r.get("metadata") or {}).get("ledger_key") and r["id"] not in run.dashboard_refund_ids
        ]
        self.check(
            len(unkeyed) <= 1, f"Stripe shows {len(unkeyed)} refunds nobody asked for: {[r['id'] for r in unkeyed]}"
        )
        if unkeyed:
            if run.release_id is None:
                run.release_id = unkeyed[0]["id"]
            self.check(unkeyed[0]["id"] == run.release_id, "a second release refund appeared at Stripe")
            released = unkeyed[0]["amount"]
            expected_release = view.authorized - view.captured
            self.check(
                released == expected_release, f"release refund {released} != authorized - captured {expected_release}"
            )

        # No duplicate at Stripe for one intended operation; each keyed refund is one of our rows.
        by_key = {row.idempotency_key: row for row in rows}
        keys = Counter((r.get("metadata") or {}).get("ledger_key") for r in view.refunds)
        keys.pop(None, None)
        for key, count in keys.items():
            self.check(count == 1, f"{count} refunds at Stripe for the one operation {key}")
            row = by_key.get(key)
            self.check(
                row is not None and row.kind == LedgerEntryKind.REFUND,
                f"Stripe refund with key {key} has no ledger row",
            )
            refund = next(r for r in view.refunds if (r.get("metadata") or {}).get("ledger_key") == key)
            self.check(
                row.amount == refund["amount"],
                f"refund {refund['id']} amount {refund['amount']} != ledger {row.amount}",
            )
        if view.captured and not run.dashboard_capture_amounts:
            staff = [
                row.amount
                for row in rows
                if row.kind == LedgerEntryKind.CAPTURE and row.idempotency_key.startswith("order:")
            ]
            self.check(
                view.captured in staff, f"Stripe captured {view.captured}, no capture of ours asked for that: {staff}"
            )

        # Stripe's own bounds.
        live = sum(r["amount"] for r in self.customer_refunds(view) if r["status"] in ("succeeded", "pending"))
        self.check(
            live <= view.captured <= view.authorized,
            f"Stripe: refunded {live} captured {view.captured} authorized {view.authorized}",
        )

        # Ledger bounds, and the ledger never counts more than Stripe did.
        self.check(
            totals.authorized == view.authorized, f"ledger authorized {totals.authorized} != Stripe {view.authorized}"
        )
        self.check(
            totals.refunded <= totals.captured, f"ledger refunded {totals.refunded} > captured {totals.captured}"
        )
        self.check(
            totals.captured + totals.voided <= totals.authorized,
            f"ledger captured {totals.captured} + voided {totals.voided} > authorized {totals.authorized}",
        )
        self.check(totals.captured in (0, view.captured), f"ledger captured {totals.captured}, Stripe {view.captured}")
        if totals.voided:
            release = view.refund(run.release_id) if run.release_id else None
            self.check(
                release is not None and release["amount"] == totals.voided,
                f"ledger voided {totals.voided}, Stripe released {release and release['amount']}",
            )
        for row in rows:
            if row.kind != LedgerEntryKind.REFUND or row.status != LedgerEntryStatus.SUCCEEDED:
                continue
            refund = view.refund(row.stripe_object_id) if row.stripe_object_id else None
            self.check(refund is not None, f"ledger refund {row.idempotency_key} succeeded, no such refund at Stripe")
            self.check(refund["id"] != run.release_id, f"ledger counts the release {refund['id']} as a refund")
            self.check(refund["amount"] == row.amount, f"ledger refund {row.amount} != Stripe {refund['amount']}")
        withdrawn = sum(d["amount"] for d in view.disputes)
        self.check(totals.disputed <= withdrawn, f"ledger disputed {totals.disputed} > disputes at Stripe {withdrawn}")

        # payment_status is the ledger's summary.
        expected = payment_status_for_totals(totals)
        self.check(order.payment_status == expected, f"payment_status {order.payment_status} != ledger's {expected}")

        # Stock: back exactly once when an unfulfilled order was canceled, never otherwise.
        on_hand = StockLevel.objects.get(variant_id=run.variant_id).on_hand
        restocked = order.fulfillment_status == "canceled" and not run.fulfilled
        want = run.stock_before if restocked else run.stock_after
        self.check(
            on_hand == want, f"stock {on_hand}, expected {want} (order {order.status}/{order.fulfillment_status})"
        )

        failed = WebhookEvent.objects.filter(payment_intent_id=run.pi_id, status=WebhookEventStatus.FAILED)
        self.check(not failed.exists(), f"dead-lettered webhooks: {list(failed.values_list('type', 'last_error'))}")

    def finish(self) -> None:
        """Faults cleared, everything resumed and reconciled: our ledger equals Stripe's truth."""
        run = self.run
        assert run is not None
        self.ls.faults_clear()
        self.step_no += 0
        self.note("final: resume + reconcile + deliver the rest + reconcile")
        services.payment_operations_resume(older_than=timedelta(0))
        reconciliation.payment_intent_reconcile(payment_intent_id=run.pi_id)
        self._pull_events()
        self._deliver(list(run.queue), duplicate_p=0.3)
        run.queue.clear()
        reconciliation.payment_intent_reconcile(payment_intent_id=run.pi_id)
        self.observe()
        view = self.view
        assert view is not None
        rows = list(ledger.ledger_entries(payment_intent_id=run.pi_id))
        totals = ledger.ledger_totals(payment_intent_id=run.pi_id)
        order = Order.objects.get(pk=run.order_id)

        pending = [row.idempotency_key for row in rows if row.status == LedgerEntryStatus.PENDING]
        self.check(not pending, f"still pending after the final resume: {pending}")
        self.check(
            totals.captured == view.captured, f"final: ledger captured {totals.captured} != Stripe {view.captured}"
        )
        release = view.refund(run.release_id)["amount"] if run.release_id else 0
        if view.status == "canceled" and not view.captured:
            release = view.authorized
        self.check(totals.voided == release, f"final: ledger voided {totals.voided} != Stripe released {release}")
        customer = self.customer_refunds(view)
        succeeded = sum(r["amount"] for r in customer if r["status"] == "succeeded")
        self.check(totals.refunded == succeeded, f"final: ledger refunded {totals.refunded} != Stripe {succeeded}")
        self.check(totals.refund_pending == 0, f"final: ledger refund_pending {totals.refund_pending}")
        disputed = sum(-sum(t["amount"] for t in d.get("balance_transactions") or []) for d in view.disputes)
        self.check(totals.disputed == disputed, f"final: ledger disputed {totals.disputed} != Stripe {disputed}")
        status_of = {"succeeded": "succeeded", "failed": "failed", "canceled": "canceled", "pending": "pending"}
        for refund in customer:
            mine = [row for row in rows if row.kind == LedgerEntryKind.REFUND and row.stripe_object_id == refund["id"]]
            self.check(len(mine) == 1, f"final: Stripe refund {refund['id']} is in {len(mine)} ledger rows")
            self.check(mine[0].amount == refund["amount"], f"final: refund {refund['id']} amount differs")
            self.check(
                mine[0].status == status_of[refund["status"]],
                f"final: refund {refund['id']} is {refund['status']} at Stripe, {mine[0].status} in the ledger",
            )
        for row in rows:
            if row.kind == LedgerEntryKind.REFUND and row.stripe_object_id:
                self.check(row.stripe_object_id != run.release_id, "final: the release is recorded as a refund")
                self.check(
                    view.refund(row.stripe_object_id) is not None, f"final: {row.stripe_object_id} not at Stripe"
                )
        ours = {
            d.stripe_dispute_id: d for d in dispute_selectors.disputes_for_payment_intent(payment_intent_id=run.pi_id)
        }
        for dispute in view.disputes:
            mine = ours.get(dispute["id"])
            self.check(mine is not None, f"final: dispute {dispute['id']} unknown to us")
            self.check(
                mine.status == dispute["status"], f"final: dispute {dispute['id']} {mine.status} != {dispute['status']}"
            )
        open_at_stripe = any(d["status"] in OPEN_DISPUTE_STATUSES for d in view.disputes)
        self.check(
            dispute_selectors.dispute_open_for_payment_intent(payment_intent_id=run.pi_id) == open_at_stripe,
            "final: dispute open flag differs from Stripe",
        )
        if view.status == "canceled":
            self.check(
                order.payment_status == "canceled", f"final: Stripe canceled, order payment {order.payment_status}"
            )
            self.check(order.status == "canceled", f"final: Stripe canceled, order {order.status}")
        self.history.append(
            f"#{run.index} {run.pi_id}: {len(run.log)} steps, stripe={view.status} captured={view.captured} "
            f"refunded={succeeded} disputed={disputed} order={order.payment_status}"
        )
        self.counts[f"final stripe {view.status} / order {order.payment_status}"] += 1

    # --- Staff operations ----------------------------------------------------------------

    def _staff(self, name: str, path: str, call: Any, *, label: str = "") -> str:
        run = self.run
        assert run is not None and self.view is not None
        before_view = self.view.key()
        before_money = _money(ledger.ledger_totals(payment_intent_id=run.pi_id))
        had_pending = bool(ledger.ledger_entries_pending(payment_intent_id=run.pi_id))
        fault = run.armed
        run.armed = None
        if fault is not None:
            status, when, count = fault
            self.ls.fault(method="POST", path=path, status=status, when=when, count=count)
        try:
            call()
            outcome = "ok"
        except services.PaymentOperationPending:
            outcome = "pending"
        except ApplicationError as exc:
            outcome = f"refused:{exc.code}"
            self.check(exc.code in STAFF_REFUSALS, f"{name}: unexpected refusal {exc.code}: {exc.message}")
        finally:
            if fault is not None:
                fired = sum(f["fired"] for f in self.ls.faults())
                self.ls.faults_clear()
                op = name.split("_")[1]
                self.counts[
                    f"fault {fault[0]} {fault[1]} on {op}: {'fired' if fired else 'not reached (refused first)'}"
                ] += 1
                if fired:
                    self.counts[f"fault fired {fired}x on one {op} (stripe-python retries={run.retries})"] += 1
        self.counts[f"{name}: {outcome}"] += 1
        self.note(f"{name}{label} fault={fault} -> {outcome}")
        if outcome.startswith("refused") and not had_pending:
            after_view = self.stripe_view().key()
            self.check(after_view == before_view, f"{name} was refused ({outcome}) but Stripe changed")
            after_money = _money(ledger.ledger_totals(payment_intent_id=run.pi_id))
            self.check(after_money == before_money, f"{name} was refused ({outcome}) but the ledger moved")
        return outcome

    def _pi_path(self, op: str) -> str:
        assert self.run is not None
        return f"^/v1/payment_intents/{self.run.pi_id}/{op}$"

    def _capture(self, name: str, amount: int | None) -> None:
        assert self.run is not None
        order_id = self.run.order_id
        self._staff(
            name,
            self._pi_path("capture"),
            lambda: services.order_payment_capture(
                order_id=order_id, amount=amount, actor="staff", user_id="cus_staff"
            ),
            label=f"({amount})",
        )

    def step_staff_capture_full(self) -> None:
        self._capture("staff_capture_full", None)

    def step_staff_capture_partial(self) -> None:
        assert self.view is not None
        authorized = max(self.view.authorized, 2)
        self._capture("staff_capture_partial", self.rng.randint(1, authorized - 1))

    def step_staff_capture_invalid(self) -> None:
        assert self.view is not None
        self._capture(
            "staff_capture_invalid", self.rng.choice((0, -5, self.view.authorized + self.rng.randint(1, 500)))
        )

    def _refund(self, name: str, amount: int | None) -> None:
        assert self.run is not None
        order_id = self.run.order_id
        refund_reason = self.rng.choice((None, None, "requested_by_customer", "duplicate", "fraudulent"))
        self._staff(
            name,
            "^/v1/refunds$",
            lambda: services.order_payment_refund(
                order_id=order_id, amount=amount, reason="walk", refund_reason=refund_reason, actor="staff"
            ),
            label=f"({amount}, {refund_reason})",
        )

    def _refundable(self) -> int:
        assert self.run is not None
        return ledger.ledger_totals(payment_intent_id=self.run.pi_id).refundable

    def step_staff_refund_partial(self) -> None:
        refundable = self._refundable()
        amount = self.rng.randint(1, refundable - 1) if refundable > 1 else self.rng.randint(1, 300)
        self._refund("staff_refund_partial", amount)

    def step_staff_refund_rest(self) -> None:
        self._refund("staff_refund_rest", self.rng.choice((None, self._refundable() or None)))

    def step_staff_refund_invalid(self) -> None:
        self._refund("staff_refund_invalid", self.rng.choice((0, -1, self._refundable() + self.rng.randint(1, 300))))

    def step_staff_cancel(self) -> None:
        assert self.run is not None
        order_id = self.run.order_id
        self._staff(
            "staff_cancel",
            self._pi_path("cancel"),
            lambda: services.order_payment_cancel(order_id=order_id, actor="staff", user_id="cus_staff"),
        )

    def step_fulfil(self) -> None:
        assert self.run is not None
        try:
            fulfillment.order_fulfil(order_id=self.run.order_id, actor="staff")
            self.run.fulfilled = True
            outcome = "ok"
        except ApplicationError as exc:
            outcome = f"refused:{exc.code}"
            self.check(exc.code in FULFIL_REFUSALS, f"fulfil: unexpected refusal {exc.code}")
        self.counts[f"fulfil: {outcome}"] += 1
        self.note(f"fulfil -> {outcome}")

    # --- What happens at Stripe ----------------------------------------------------------

    def _at_stripe(self, name: str, call: Any, *, label: str = "") -> dict[str, Any] | None:
        try:
            result = call()
        except LocalStripeError as exc:
            self.check(exc.status == 400, f"{name}: the stand-in answered {exc.status}: {exc.body}")
            self.counts[f"{name}: refused by Stripe"] += 1
            self.note(f"{name}{label} -> refused by Stripe ({json.loads(exc.body)['error'].get('message', '')[:80]})")
            return None
        self.counts[f"{name}: ok"] += 1
        self.note(f"{name}{label} -> ok {result.get('id')} {result.get('amount', '')} {result.get('status', '')}")
        return result

    def step_dashboard_capture(self) -> None:
        assert self.run is not None and self.view is not None
        authorized = self.view.authorized
        amount = self.rng.choice((None, self.rng.randint(1, max(authorized - 1, 1))))
        result = self._at_stripe(
            "dashboard_capture", lambda: self.ls.dashboard_capture(self.run.pi_id, amount=amount), label=f"({amount})"
        )
        if result is not None:
            self.run.dashboard_capture_amounts.append(authorized if amount is None else amount)

    def step_dashboard_refund(self) -> None:
        assert self.run is not None and self.view is not None
        left = self.view.captured - sum(
            r["amount"] for r in self.customer_refunds(self.view) if r["status"] in ("succeeded", "pending")
        )
        amount = (
            self.rng.randint(1, left)
            if left > 0 and self.rng.random() < 0.9
            else max(left, 0) + self.rng.randint(1, 200)
        )
        result = self._at_stripe(
            "dashboard_refund", lambda: self.ls.dashboard_refund(self.run.pi_id, amount=amount), label=f"({amount})"
        )
        if result is not None:
            self.run.dashboard_refund_ids.add(result["id"])

    def step_dashboard_cancel(self) -> None:
        assert self.run is not None
        self._at_stripe("dashboard_cancel", lambda: self.ls.dashboard_cancel(self.run.pi_id))

    def step_authorization_expire(self) -> None:
        assert self.run is not None
        self._at_stripe("authorization_expire", lambda: self.ls.authorization_expire(self.run.pi_id))

    def step_refund_fail(self) -> None:
        assert self.view is not None
        candidates = [r for r in self.customer_refunds(self.view) if r["status"] == "succeeded"]
        if not candidates:
            self.counts["refund_fail: nothing to fail"] += 1
            self.note("refund_fail -> no succeeded refund")
            return
        refund = self.rng.choice(candidates)
        self._at_stripe("refund_fail", lambda: self.ls.refund_fail(refund["id"]))

    def step_dispute_open(self) -> None:
        run, view = self.run, self.view
        assert run is not None and view is not None
        if run.dispute_id is not None:  # one dispute per charge, as at Stripe
            self.step_dispute_update()
            return
        live = sum(r["amount"] for r in self.customer_refunds(view) if r["status"] in ("succeeded", "pending"))
        left = view.captured - live
        amount = self.rng.randint(1, left) if left > 0 else None
        if left > 0 and self.rng.random() < 0.5:
            amount = left
        result = self._at_stripe(
            "dispute_open", lambda: self.ls.dispute_open(payment_intent=run.pi_id, amount=amount), label=f"({amount})"
        )
        if result is not None:
            run.dispute_id = result["id"]

    def _dispute(self, name: str, call: Any) -> None:
        if self.run is None or self.run.dispute_id is None:
            self.counts[f"{name}: no dispute"] += 1
            self.note(f"{name} -> no dispute")
            return
        dispute_id = self.run.dispute_id
        self._at_stripe(name, lambda: call(dispute_id))

    def step_dispute_update(self) -> None:
        self._dispute("dispute_update", lambda d: self.ls.dispute_update(d, status="under_review"))

    def step_dispute_won(self) -> None:
        self._dispute("dispute_won", lambda d: self.ls.dispute_close(d, outcome="won"))

    def step_dispute_lost(self) -> None:
        self._dispute("dispute_lost", lambda d: self.ls.dispute_close(d, outcome="lost"))

    # --- Webhooks, reconciliation, resume --------------------------------------------------

    def _pull_events(self) -> None:
        """Move the events the stand-in holds into our own queue (ids in order, with their body)."""
        run = self.run
        assert run is not None
        held = self.ls.webhooks_held()
        self.ls.webhooks_drop_held()
        for item in held:
            run.queue.append(self.ls.request("GET", f"/v1/events/{item['id']}"))

    def _post(self, event: dict[str, Any]) -> None:
        from tests.webhooks.conftest import deliver

        with self.capture_on_commit(execute=True):
            response = deliver(self.client, event, secret=self.webhook_secret)
        self.check(response.status_code == 200, f"webhook {event['type']} answered {response.status_code}")

    def _deliver(self, events: list[dict[str, Any]], *, duplicate_p: float) -> list[str]:
        run = self.run
        assert run is not None
        done = []
        for event in events:
            copies = 2 if self.rng.random() < duplicate_p else 1
            for _ in range(copies):
                self._post(event)
            run.delivered.append(event)
            done.append(f"{event['type']}{'x2' if copies == 2 else ''}")
            self.counts[f"webhook delivered {event['type']}"] += 1
            if copies == 2:
                self.counts["webhook duplicated"] += 1
        return done

    def step_deliver(self) -> None:
        run = self.run
        assert run is not None
        rng = self.rng
        self._pull_events()
        now, later, dropped = [], [], []
        for event in run.queue:
            roll = rng.random()
            (dropped if roll < 0.12 else later if roll < 0.27 else now).append(event)
        order = rng.choice(("fifo", "reverse", "shuffle"))
        if order == "reverse":
            now.reverse()
        elif order == "shuffle":
            rng.shuffle(now)
        if run.delivered and rng.random() < 0.2:  # Stripe retrying an old delivery
            now.insert(rng.randrange(len(now) + 1), rng.choice(run.delivered))
            self.counts["webhook redelivered old"] += 1
        run.queue = later
        done = self._deliver(now, duplicate_p=0.15)
        self.counts["webhook dropped"] += len(dropped)
        self.counts["deliver: ok"] += 1
        self.note(f"deliver {order}: {done} dropped={[e['type'] for e in dropped]} kept={len(later)}")

    def step_reconcile(self) -> None:
        assert self.run is not None
        outcome = reconciliation.payment_intent_reconcile(payment_intent_id=self.run.pi_id)
        self.counts[f"reconcile: {outcome.action}"] += 1
        self.note(f"reconcile -> {outcome.describe()}")

    def step_reconcile_sweep(self) -> None:
        assert self.run is not None
        # The window covers this order's session only (older orders are done; their intents may be flushed).
        now = timezone.now()
        report = reconciliation.payments_reconcile(now=now, grace=timedelta(0), window=now - self.run.placed_at)
        self.check(not report.errors, f"sweep errors: {report.errors}")
        self.counts["reconcile_sweep: ok"] += 1
        self.note(f"sweep -> checked={report.checked} fixes={[f.describe() for f in report.fixes]}")

    def step_resume(self) -> None:
        run = self.run
        assert run is not None
        pending = ledger.ledger_entries_pending(payment_intent_id=run.pi_id)
        fault = None
        if run.retries == 0 and pending and self.rng.random() < 0.25:  # Stripe down while resuming
            fault = self.rng.choice((500, 503, "reset"))
            self.ls.fault(method="GET", path=f"^/v1/payment_intents/{run.pi_id}$", status=fault, count=1)
        try:
            if self.rng.random() < 0.5:
                results = [services.payment_operation_resume(idempotency_key=row.idempotency_key) for row in pending]
                how = "each"
            else:
                results = [f"settled {services.payment_operations_resume(older_than=timedelta(0))}"]
                how = "all"
        finally:
            if fault is not None:
                self.ls.faults_clear()
                self.counts[f"fault {fault} on resume read"] += 1
        self.counts[f"resume ({'pending' if pending else 'nothing pending'})"] += 1
        self.note(
            f"resume {how} pending={[r.idempotency_key.rsplit(':', 2)[-2:] for r in pending]} fault={fault} -> {results}"
        )

    def step_arm_fault(self) -> None:
        run = self.run
        assert run is not None
        status = self.rng.choice(FAULT_STATUSES)
        when = self.rng.choice(("before", "after"))
        count = self.rng.randint(1, run.retries + 1) if run.retries else 1
        run.armed = (status, when, count)
        self.counts["arm_fault"] += 1
        self.note(f"arm fault {status} {when} x{count}")


def timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.monotonic()
    result = function(*args, **kwargs)
    return result, time.monotonic() - start


__all__ = ["Divergence", "OrderRun", "StripeView", "Walk", "timed"]
