"""Generate realistic demo history for the back office: orders over the last N days, without Stripe.

    python manage.py generate_demo_orders [--orders 300] [--days 30] [--seed 42] [--replace]

Loads the demo catalog first (``load_demo_catalog``), then writes, in one transaction, rows
shaped exactly like the ones checkout, the payment services and the webhook inbox write:

* orders in USD, EUR, JPY and KWD with their carts, lines, payment sessions, ledger rows
  (authorization, capture, release of an uncaptured rest, refunds) and event timelines;
  recent ones still authorized (a few about to expire), older ones captured, shipped and
  delivered; some partially or fully refunded, some canceled, a few disputed;
* declined payments and abandoned carts (with items, no order);
* Stripe webhook events for all of it: mostly processed with a realistic lag, a few
  dead-lettered, a few still waiting (backlog).

Stripe ids are fake (``pi_demo_…``, ``ch_demo_…``) and no Stripe call is made, so capture and
refund buttons on these orders fail at Stripe with a message: the data is for looking at.
``--replace`` deletes earlier demo rows first (everything carrying a ``demo`` id or the
``@demo.example.com`` email domain); without it, more history is added.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import models, transaction
from django.db.models import Max
from django.utils import timezone
from ulid import ULID

from carts.calculations import LineInput, cart_totals
from carts.models import Cart, CartStatus, LineItem
from catalog.models import Price, Region, ShippingOption, Variant
from common.actors import Actor
from common.money import charge_increment
from customers.models import User
from orders import expiry
from orders.models import (
    FulfillmentStatus,
    Order,
    OrderCounter,
    OrderEvent,
    OrderLine,
    OrderStatus,
    PaymentStatus,
)
from payments import ledger
from payments.models import (
    Dispute,
    LedgerEntry,
    LedgerEntryKind,
    LedgerEntryStatus,
    PaymentAttempt,
    PaymentAttemptOutcome,
    PaymentAttemptStage,
    PaymentSession,
    PaymentSessionStatus,
)
from payments.services import attempts as payment_attempts

DEMO_DOMAIN = "demo.example.com"
ORDER_COUNTER = "order"  # orders.services.ORDER_COUNTER
CURRENCY_WEIGHTS = {"usd": 55, "eur": 20, "jpy": 15, "kwd": 10}
FIRST_NAMES = ["Ada", "Grace", "Hana", "Noor", "Lena", "Maya", "Omar", "Yuki", "Sofia", "Ines", "Kenji", "Luca"]
LAST_NAMES = ["Lovelace", "Hopper", "Sato", "Al-Sabah", "Schmidt", "Rossi", "Tanaka", "Garcia", "Dubois", "Khan"]
CITIES = {
    "usd": ("US", ["Springfield", "Portland", "Austin", "Boston"]),
    "eur": ("DE", ["Berlin", "Hamburg", "Munich", "Cologne"]),
    "jpy": ("JP", ["Tokyo", "Osaka", "Kyoto", "Sapporo"]),
    "kwd": ("KW", ["Kuwait City", "Hawalli", "Salmiya"]),
}
CARRIERS = ["UPS", "DHL", "FedEx", "Yamato", "Aramex"]
STREETS = ["Loom", "Mill", "Weaver", "Linen", "Silk"]
HOURLY_WEIGHTS = [1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 6, 6, 6, 6, 6, 7, 8, 9, 9, 8, 6, 4, 2]  # busier in the evening
STAFF_ID = "cus_demo_staff"


def _id(prefix: str) -> str:
    return f"{prefix}_demo_{str(ULID()).lower()}"


@dataclass
class Batch:
    """Rows to insert, each with the timestamp its auto_now_add field must really have."""

    rows: dict[type[models.Model], list[tuple[models.Model, datetime]]] = field(default_factory=dict)

    def add(self, row: models.Model, at: datetime) -> models.Model:
        self.rows.setdefault(type(row), []).append((row, at))
        return row

    def count(self, model: type[models.Model]) -> int:
        return len(self.rows.get(model, []))


TIME_FIELDS = {"WebhookEvent": "received_at"}


def _write(model: type[models.Model], pairs: Sequence[tuple[models.Model, datetime]]) -> None:
    """bulk_create, then put the real timestamps back (auto_now_add overwrote them)."""
    if not pairs:
        return
    objs = [obj for obj, _ in pairs]
    model._default_manager.bulk_create(objs, batch_size=500)
    name = TIME_FIELDS.get(model.__name__, "created_at")
    if name not in {f.name for f in model._meta.fields}:
        return
    for obj, at in pairs:
        setattr(obj, name, at)
    model._default_manager.bulk_update(objs, [name], batch_size=500)


@dataclass
class Catalog:
    regions: dict[str, Region]
    shipping: dict[str, list[ShippingOption]]
    prices: dict[str, list[tuple[Variant, int]]]


def _catalog() -> Catalog:
    regions: dict[str, Region] = {}
    for region in Region.objects.filter(currency_code__in=list(CURRENCY_WEIGHTS)).order_by("name"):
        regions.setdefault(region.currency_code, region)
    shipping = {
        code: list(ShippingOption.objects.filter(region=region, is_active=True).order_by("amount"))
        for code, region in regions.items()
    }
    prices: dict[str, list[tuple[Variant, int]]] = {}
    for price in (
        Price.objects.select_related("variant__product")
        .filter(currency_code__in=list(regions))
        .order_by("variant__sku")
    ):
        prices.setdefault(price.currency_code, []).append((price.variant, price.amount))
    return Catalog(regions=regions, shipping=shipping, prices=prices)


class Generator:
    def __init__(
        self, *, rng: random.Random, now: datetime, days: int, catalog: Catalog, customers: list[User]
    ) -> None:
        self.rng = rng
        self.now = now
        self.days = days
        self.catalog = catalog
        self.customers = customers
        self.batch = Batch()
        self.display_id = (Order.objects.aggregate(top=Max("display_id"))["top"] or 0) + 1
        self.stats: dict[str, int] = {}

    # --- small helpers

    def _bump(self, key: str, by: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + by

    def _when(self) -> datetime:
        """A moment in the period; busier in the evening and on recent days."""
        day = min(int(self.rng.triangular(0, self.days, 0)), self.days - 1)
        hour = self.rng.choices(range(24), weights=HOURLY_WEIGHTS)[0]
        moment = (self.now - timedelta(days=day)).replace(
            hour=hour, minute=self.rng.randrange(60), second=self.rng.randrange(60)
        )
        if moment > self.now:
            moment -= timedelta(days=1)
        return moment

    def _currency(self) -> str:
        codes = [c for c in CURRENCY_WEIGHTS if c in self.catalog.regions and self.catalog.prices.get(c)]
        return self.rng.choices(codes, weights=[CURRENCY_WEIGHTS[c] for c in codes])[0]

    def _person(self, currency: str) -> tuple[str, dict[str, Any], User | None]:
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        country, cities = CITIES[currency]
        if currency == "eur":
            country = self.rng.choice(self.catalog.regions["eur"].countries or ["DE"])
        address = {
            "first_name": first,
            "last_name": last,
            "address_1": f"{self.rng.randint(1, 250)} {self.rng.choice(STREETS)} Street",
            "city": self.rng.choice(cities),
            "postal_code": f"{self.rng.randint(10000, 99999)}",
            "country_code": country,
        }
        customer = self.rng.choice(self.customers) if self.customers and self.rng.random() < 0.4 else None
        email = customer.email if customer else f"{first}.{last}{self.rng.randint(1, 9999)}@{DEMO_DOMAIN}".lower()
        return email, address, customer

    def _cart(  # type: ignore[no-untyped-def]
        self,
        *,
        currency: str,
        at: datetime,
        status: str,
        email: str,
        address: dict[str, Any] | None,
        customer: User | None,
    ):
        region = self.catalog.regions[currency]
        options = self.catalog.shipping[currency]
        option = self.rng.choices(options, weights=[8, 2][: len(options)])[0]
        cart = Cart(
            region=region,
            currency_code=currency,
            email=email,
            customer=customer,
            status=status,
            shipping_address=address,
            billing_address=None,
            shipping_option=option,
            shipping_name=option.name,
            shipping_amount=option.amount,
            expires_at=at + timedelta(days=7),
            completed_at=at if status == CartStatus.COMPLETED else None,
        )
        self.batch.add(cart, at - timedelta(minutes=self.rng.randint(3, 40)))
        prices = self.catalog.prices[currency]
        picks = self.rng.sample(prices, k=min(self.rng.choice([1, 1, 2, 2, 3]), len(prices)))
        items = []
        for variant, price in picks:
            item = LineItem(
                cart=cart,
                variant=variant,
                sku=variant.sku,
                title=f"{variant.product.title} / {variant.title}",
                quantity=self.rng.choice([1, 1, 2, 2, 3, 4]),
                unit_price=price,
            )
            self.batch.add(item, at - timedelta(minutes=2))
            items.append(item)
        totals = cart_totals(
            lines=[LineInput(key=item.id, unit_price=item.unit_price, quantity=item.quantity) for item in items],
            shipping_amount=option.amount,
            tax_rate_bps=region.tax_rate_bps,
            tax_inclusive=region.tax_inclusive,
            increment=charge_increment(currency),
        )
        return cart, items, totals, option

    def _session(self, *, cart: Cart, at: datetime, status: str, amount: int) -> PaymentSession:
        session = PaymentSession(
            cart_id=cart.id,
            payment_intent_id=_id("pi"),
            client_secret="",
            status=status,
            amount=amount,
            currency_code=cart.currency_code,
            cart_version=1,
            customer_id=cart.customer_id or "",
        )
        self.batch.add(session, at - timedelta(minutes=1))
        return session

    def _attempt(self, *, session: PaymentSession, at: datetime, outcome: str, key: str, code: str = "") -> None:
        """The attempt outcome the payments services would have recorded for this session."""
        attempt = PaymentAttempt(
            cart_id=session.cart_id,
            payment_session=session,
            payment_intent_id=session.payment_intent_id or "",
            stage=PaymentAttemptStage.CONFIRM,
            outcome=outcome,
            decline_code=code,
            amount=session.amount,
            currency_code=session.currency_code,
            idempotency_key=key,
        )
        self.batch.add(attempt, at)

    def _ledger(
        self,
        *,
        order: Order,
        kind: str,
        amount: int,
        at: datetime,
        key: str,
        actor: str,
        obj: str = "",
        reason: str = "",
    ) -> None:
        self.batch.add(
            LedgerEntry(
                payment_intent_id=order.payment_intent_id,
                order_id=order.id,
                kind=kind,
                status=LedgerEntryStatus.SUCCEEDED,
                amount=amount,
                currency_code=order.currency_code,
                idempotency_key=key,
                stripe_object_id=obj,
                actor=actor,
                actor_user_id=STAFF_ID if actor == Actor.STAFF else "",
                reason=reason,
            ),
            at,
        )

    def _event(self, *, order: Order, type: str, at: datetime, actor: str, payload: dict[str, Any]) -> None:
        user_id = STAFF_ID if actor == Actor.STAFF else ""
        self.batch.add(OrderEvent(order=order, type=type, actor=actor, actor_user_id=user_id, payload=payload), at)

    def _webhook(self, *, type: str, at: datetime, obj: dict[str, Any], payment_intent_id: str) -> None:
        WebhookEvent = apps.get_model("webhooks", "WebhookEvent")  # orders does not import webhooks
        event_id = _id("evt")
        payload = {
            "id": event_id,
            "object": "event",
            "type": type,
            "created": int(at.timestamp()),
            "livemode": False,
            "api_version": "2026-05-27.dahlia",
            "data": {"object": obj},
        }
        received = at + timedelta(seconds=self.rng.uniform(0.3, 2.5))
        roll = self.rng.random()
        age = self.now - received
        if age < timedelta(minutes=30) and roll < 0.5:
            status, attempts, processed, failed, error = "received", 0, None, None, ""
        elif roll < 0.02:
            status, attempts, processed, failed = "failed", 9, None, received + timedelta(hours=2)
            error = self.rng.choice(
                [
                    "ProviderUnavailable: The payment provider is unavailable. Please retry.",
                    "PermanentEventError: paid_without_order: cart cart_demo has no session for this PaymentIntent.",
                    'OperationalError: could not obtain lock on row in relation "orders_order"',
                ]
            )
        else:
            # mostly well under a second or two; sometimes a retry (tens of seconds) or a backlog (minutes)
            lag = self.rng.choice(
                [self.rng.uniform(0.05, 1.5)] * 8 + [self.rng.uniform(2, 40), self.rng.uniform(60, 600)]
            )
            status, attempts, failed, error = "processed", 1 if lag < 30 else 2, None, ""
            processed = received + timedelta(seconds=lag)
        self.batch.add(
            WebhookEvent(
                stripe_event_id=event_id,
                type=type,
                livemode=False,
                api_version="2026-05-27.dahlia",
                stripe_created_at=at,
                object_id=str(obj.get("id") or ""),
                payment_intent_id=payment_intent_id,
                payload=json.dumps(payload, separators=(",", ":")),
                status=status,
                attempts=attempts,
                last_error=error,
                processing_started_at=processed or failed,
                processed_at=processed,
                failed_at=failed,
            ),
            received,
        )
        self._bump(f"webhook_{status}")

    # --- one order

    def order(self, placed: datetime) -> None:
        rng = self.rng
        currency = self._currency()
        email, address, customer = self._person(currency)
        cart, items, totals, option = self._cart(
            currency=currency, at=placed, status=CartStatus.COMPLETED, email=email, address=address, customer=customer
        )
        session = self._session(cart=cart, at=placed, status=PaymentSessionStatus.AUTHORIZED, amount=totals.total)
        pi = session.payment_intent_id or ""
        self._attempt(
            session=session,
            at=placed,
            outcome=PaymentAttemptOutcome.SUCCEEDED,
            key=payment_attempts.attempt_key_succeeded(payment_intent_id=pi),
        )
        order = Order(
            display_id=self.display_id,
            cart=cart,
            status=OrderStatus.PENDING,
            payment_status=PaymentStatus.NOT_PAID,
            fulfillment_status=FulfillmentStatus.NOT_FULFILLED,
            email=email,
            customer=customer,
            region=cart.region,
            currency_code=currency,
            tax_rate_bps=cart.region.tax_rate_bps,
            tax_inclusive=cart.region.tax_inclusive,
            shipping_address=address,
            billing_address=address,
            shipping_option_id=option.id,
            shipping_name=option.name,
            subtotal=totals.subtotal,
            shipping_total=totals.shipping_total,
            shipping_tax=totals.shipping_tax,
            tax_total=totals.tax_total,
            total=totals.total,
            payment_intent_id=session.payment_intent_id or "",
            capture_method="manual",
            authorized_at=placed,
            capture_before=placed + timedelta(days=7),
            confirmation_sent_at=placed + timedelta(seconds=5),
        )
        self.display_id += 1
        self.batch.add(order, placed)
        for position, item in enumerate(items):
            line = totals.lines[item.id]
            row = OrderLine(
                order=order,
                variant_id=item.variant_id,
                sku=item.sku,
                title=item.title,
                quantity=item.quantity,
                unit_price=item.unit_price,
                subtotal=line.subtotal,
                tax_total=line.tax_total,
                total=line.total,
                position=position,
            )
            self.batch.add(row, placed)
        story = OrderStory(gen=self, order=order)
        story.placed(at=placed, cart_id=cart.id, lines=len(items))
        self._bump(f"orders_{currency}")
        age = self.now - placed

        # Still authorized: only recent orders (a card hold lasts 7 days); a few released by staff.
        if age < timedelta(days=7) and (age < timedelta(days=1) or rng.random() < 0.22):
            if rng.random() < 0.06 and age > timedelta(hours=2):
                story.cancel(at=placed + min(age / 2, timedelta(hours=20)))
                session.status = PaymentSessionStatus.CANCELED
            self._bump("awaiting_capture" if order.payment_status == PaymentStatus.AUTHORIZED else "canceled")
            return
        if rng.random() < 0.05:  # the customer changed their mind before capture
            story.cancel(at=placed + timedelta(hours=rng.uniform(1, 30)))
            session.status = PaymentSessionStatus.CANCELED
            self._bump("canceled")
            return
        session.status = PaymentSessionStatus.SUCCEEDED

        # Captured by staff within two days; sometimes partially (the last item was out of stock)
        captured_at = min(placed + timedelta(hours=rng.uniform(0.5, 40)), self.now - timedelta(minutes=5))
        last_line = totals.lines[items[-1].id].total
        partial = len(items) > 1 and rng.random() < 0.06 and 0 < last_line < order.total
        amount = order.total - last_line if partial else order.total
        story.capture(at=captured_at, amount=amount)
        self._bump("partially_captured" if partial else "captured")

        full_refund = rng.random() < 0.05
        partial_refund = not full_refund and rng.random() < 0.13
        moment = story.fulfil(since=captured_at, stop_before_shipping=full_refund)
        refund_at = moment + timedelta(hours=rng.uniform(2, 72))
        if (full_refund or partial_refund) and refund_at < self.now:
            increment = charge_increment(currency)
            value = amount if full_refund else max(amount // rng.choice([2, 3, 4]) // increment * increment, increment)
            story.refund(at=refund_at, amount=value)
            self._bump("refunded" if full_refund else "partially_refunded")
        if order.payment_status != PaymentStatus.REFUNDED and rng.random() < 0.035:
            opened = captured_at + timedelta(days=rng.uniform(1, 10))
            if opened < self.now:
                closed = rng.random() < 0.5 and opened + timedelta(days=5) < self.now
                story.dispute(opened=opened, closed=closed)
                self._bump("disputes_closed" if closed else "disputes_open")

    # --- carts without an order

    def declined(self) -> None:
        currency = self._currency()
        at = self._when()
        email, address, customer = self._person(currency)
        status = CartStatus.ACTIVE if at + timedelta(days=7) > self.now else CartStatus.EXPIRED
        cart, _, totals, _ = self._cart(
            currency=currency, at=at, status=status, email=email, address=address, customer=customer
        )
        session = self._session(cart=cart, at=at, status=PaymentSessionStatus.FAILED, amount=totals.total)
        key = payment_attempts.attempt_key_declined(
            payment_intent_id=session.payment_intent_id or "", failure_id=_id("ch")
        )
        self._attempt(session=session, at=at, outcome=PaymentAttemptOutcome.DECLINED, key=key, code="card_declined")
        intent = {
            "id": session.payment_intent_id,
            "object": "payment_intent",
            "amount": totals.total,
            "currency": currency,
            "status": "requires_payment_method",
            "last_payment_error": {"code": "card_declined"},
        }
        self._webhook(type="payment_intent.payment_failed", at=at, obj=intent, payment_intent_id=intent["id"] or "")
        self._bump("declined")

    def abandoned(self) -> None:
        currency = self._currency()
        at = self._when()
        with_address = self.rng.random() < 0.5
        email, address, customer = self._person(currency)
        status = CartStatus.ACTIVE if at + timedelta(days=7) > self.now else CartStatus.EXPIRED
        cart, _, totals, _ = self._cart(
            currency=currency,
            at=at,
            status=status,
            email=email,  # the checkout asks for the email first: every demo cart has one (and --replace finds it)
            address=address if with_address else None,
            customer=customer,
        )
        if with_address and self.rng.random() < 0.5:  # reached the payment step, never paid
            unfinished = (
                PaymentSessionStatus.REQUIRES_ACTION if self.rng.random() < 0.2 else PaymentSessionStatus.PENDING
            )
            session = self._session(cart=cart, at=at, status=unfinished, amount=totals.total)
            if unfinished == PaymentSessionStatus.REQUIRES_ACTION:
                key = payment_attempts.attempt_key_requires_action(payment_intent_id=session.payment_intent_id or "")
                self._attempt(session=session, at=at, outcome=PaymentAttemptOutcome.REQUIRES_ACTION, key=key)
        self._bump("abandoned")

    def write(self) -> None:
        WebhookEvent = apps.get_model("webhooks", "WebhookEvent")
        for model in (
            Cart,
            LineItem,
            PaymentSession,
            PaymentAttempt,
            Order,
            OrderLine,
            LedgerEntry,
            OrderEvent,
            Dispute,
            WebhookEvent,
        ):
            _write(model, self.batch.rows.get(model, []))
        top = self.display_id - 1
        OrderCounter.objects.get_or_create(name=ORDER_COUNTER, defaults={"value": top})
        OrderCounter.objects.filter(name=ORDER_COUNTER, value__lt=top).update(value=top)


class OrderStory:
    """The money and fulfillment history of one demo order: ledger rows, events, webhook events."""

    def __init__(self, *, gen: Generator, order: Order) -> None:
        self.gen = gen
        self.rng = gen.rng
        self.order = order
        self.pi = order.payment_intent_id
        self.charge = _id("ch")
        self.amounts = {"authorized": 0, "captured": 0, "voided": 0, "refunded": 0}
        self.captured = 0

    def _money(
        self, *, at: datetime, actor: str, target: str, event_type: str, delta: dict[str, int], **extra: Any
    ) -> None:
        """Money moved: a payment_status_changed event (or ``event_type`` when the status stays)."""
        order = self.order
        before = dict(self.amounts)
        for key, value in delta.items():
            self.amounts[key] += value
        payload: dict[str, Any] = {"amounts_before": before, "amounts_after": dict(self.amounts), **extra}
        if target != order.payment_status:
            payload = {"field": "payment_status", "from": order.payment_status, "to": target, **payload}
            event_type = "payment_status_changed"
            order.payment_status = target
        self.gen._event(order=order, type=event_type, at=at, actor=actor, payload=payload)

    def _status(self, *, at: datetime, field: str, target: str, reason: str) -> None:
        payload = {"field": field, "from": getattr(self.order, field), "to": target, "reason": reason}
        self.gen._event(order=self.order, type=f"{field}_changed", at=at, actor=Actor.STAFF, payload=payload)
        setattr(self.order, field, target)

    def _ledger(
        self, *, kind: str, amount: int, at: datetime, key: str, actor: str = Actor.STAFF, **extra: str
    ) -> None:
        self.gen._ledger(order=self.order, kind=kind, amount=amount, at=at, key=key, actor=actor, **extra)

    def _webhook(self, type: str, at: datetime, **obj: Any) -> None:
        self.gen._webhook(type=type, at=at, obj=obj, payment_intent_id=self.pi)

    def _intent(self, status: str, **extra: Any) -> dict[str, Any]:
        order = self.order
        return {
            "id": self.pi,
            "object": "payment_intent",
            "amount": order.total,
            "currency": order.currency_code,
            "status": status,
            **extra,
        }

    def placed(self, *, at: datetime, cart_id: str, lines: int) -> None:
        order = self.order
        payload = {
            "display_id": order.display_id,
            "cart_id": cart_id,
            "payment_intent_id": self.pi,
            "total": order.total,
            "currency_code": order.currency_code,
            "lines": lines,
        }
        self.gen._event(order=order, type="order_placed", at=at, actor=Actor.CUSTOMER, payload=payload)
        key = ledger.key_authorization(payment_intent_id=self.pi)
        self._ledger(
            kind=LedgerEntryKind.AUTHORIZATION, amount=order.total, at=at, key=key, actor=Actor.STRIPE, obj=self.charge
        )
        self._money(
            at=at, actor=Actor.STRIPE, target=PaymentStatus.AUTHORIZED, event_type="", delta={"authorized": order.total}
        )
        notice = at + timedelta(seconds=5)
        self.gen._event(
            order=order, type="confirmation_sent", at=notice, actor=Actor.SYSTEM, payload={"to": "customer"}
        )
        self._webhook("payment_intent.amount_capturable_updated", at, **self._intent("requires_capture"))

    def cancel(self, *, at: datetime) -> None:
        order, reason = self.order, "customer asked to cancel"
        key = ledger.key_operation(order_id=order.id, op="cancel", version=1)
        self._ledger(kind=LedgerEntryKind.VOID, amount=order.total, at=at, key=key, reason=reason)
        self._money(
            at=at,
            actor=Actor.STAFF,
            target=PaymentStatus.CANCELED,
            event_type="payment_canceled",
            delta={"voided": order.total},
            reason=reason,
        )
        self._status(at=at, field="status", target=OrderStatus.CANCELED, reason=reason)
        self._status(at=at, field="fulfillment_status", target=FulfillmentStatus.CANCELED, reason=reason)
        self._webhook("payment_intent.canceled", at, **self._intent("canceled"))

    def capture(self, *, at: datetime, amount: int) -> None:
        order = self.order
        rest = order.total - amount
        reason = "last item out of stock" if rest else ""
        key = ledger.key_operation(order_id=order.id, op="capture", version=1)
        self._ledger(kind=LedgerEntryKind.CAPTURE, amount=amount, at=at, key=key, obj=self.charge, reason=reason)
        if rest:
            self._ledger(kind=LedgerEntryKind.VOID, amount=rest, at=at, key=ledger.key_void(payment_intent_id=self.pi))
        target = PaymentStatus.PARTIALLY_CAPTURED if rest else PaymentStatus.CAPTURED
        extra = {"reason": reason} if reason else {}
        self._money(
            at=at,
            actor=Actor.STAFF,
            target=target,
            event_type="payment_captured",
            delta={"captured": amount, "voided": rest},
            charge_id=self.charge,
            **extra,
        )
        self.captured = amount
        self._webhook("payment_intent.succeeded", at, **self._intent("succeeded", amount_received=amount))
        self._webhook(
            "charge.captured",
            at,
            id=self.charge,
            object="charge",
            payment_intent=self.pi,
            amount_captured=amount,
            currency=order.currency_code,
        )

    def fulfil(self, *, since: datetime, stop_before_shipping: bool) -> datetime:
        """Fulfilled, shipped, delivered along the order's age; returns the time of the last step."""
        rng, moment = self.rng, since
        steps = [
            (FulfillmentStatus.FULFILLED, timedelta(hours=rng.uniform(2, 20))),
            (FulfillmentStatus.SHIPPED, timedelta(hours=rng.uniform(2, 30))),
            (FulfillmentStatus.DELIVERED, timedelta(days=rng.uniform(1.5, 5))),
        ]
        for target, delay in steps:
            if (stop_before_shipping and target == FulfillmentStatus.SHIPPED) or moment + delay > self.gen.now:
                break
            moment += delay
            self._status(at=moment, field="fulfillment_status", target=target, reason="")
            if target == FulfillmentStatus.SHIPPED:
                shipment = {"carrier": rng.choice(CARRIERS), "tracking_number": f"1Z{rng.randrange(10**9, 10**10)}"}
                self.gen._event(
                    order=self.order, type="shipment_recorded", at=moment, actor=Actor.STAFF, payload=shipment
                )
        if self.order.fulfillment_status == FulfillmentStatus.DELIVERED:
            self._status(at=moment, field="status", target=OrderStatus.COMPLETED, reason="delivered")
        return moment

    def refund(self, *, at: datetime, amount: int) -> None:
        order, rng = self.order, self.rng
        full = amount >= self.captured
        reasons = ["requested_by_customer: damaged in transit", "requested_by_customer: wrong colour", "duplicate"]
        reason = "requested_by_customer" if full else rng.choice(reasons)
        refund = _id("re")
        version = len(
            [1 for model, _ in self.gen.batch.rows.get(LedgerEntry, []) if getattr(model, "order_id", None) == order.id]
        )
        key = ledger.key_operation(order_id=order.id, op="refund", version=version)
        self._ledger(kind=LedgerEntryKind.REFUND, amount=amount, at=at, key=key, obj=refund, reason=reason)
        target = PaymentStatus.REFUNDED if full else PaymentStatus.PARTIALLY_REFUNDED
        self._money(
            at=at,
            actor=Actor.STAFF,
            target=target,
            event_type="payment_refunded",
            delta={"refunded": amount},
            reason=reason,
            refund_id=refund,
        )
        self._webhook(
            "charge.refunded",
            at,
            id=self.charge,
            object="charge",
            payment_intent=self.pi,
            amount_refunded=amount,
            currency=order.currency_code,
        )
        self._webhook(
            "refund.created", at, id=refund, object="refund", payment_intent=self.pi, amount=amount, status="succeeded"
        )
        unshipped = (FulfillmentStatus.NOT_FULFILLED, FulfillmentStatus.FULFILLED)
        if full and order.fulfillment_status in unshipped:
            self._status(at=at, field="fulfillment_status", target=FulfillmentStatus.CANCELED, reason="refunded")
            self._status(at=at, field="status", target=OrderStatus.CANCELED, reason="refunded")

    def dispute(self, *, opened: datetime, closed: bool) -> None:
        order, rng = self.order, self.rng
        status = rng.choice(["won", "lost"]) if closed else rng.choice(["needs_response", "under_review"])
        dispute_id = _id("dp")
        reason = rng.choice(["fraudulent", "product_not_received", "product_unacceptable"])
        amount = self.captured - self.amounts["refunded"]
        row = Dispute(
            stripe_dispute_id=dispute_id,
            payment_intent_id=self.pi,
            charge_id=self.charge,
            order_id=order.id,
            amount=amount,
            currency_code=order.currency_code,
            reason=reason,
            status=status,
            is_open=not closed,
            evidence_due_by=opened + timedelta(days=7),
            funds_withdrawn=True,
            funds_reinstated=status == "won",
        )
        self.gen.batch.add(row, opened)
        payload = {
            "dispute_id": dispute_id,
            "status": status,
            "is_open": not closed,
            "amount": amount,
            "currency_code": order.currency_code,
            "reason": reason,
        }
        opened_payload = {**payload, "status": "needs_response", "is_open": True}
        self.gen._event(order=order, type="dispute_opened", at=opened, actor=Actor.STRIPE, payload=opened_payload)
        obj = {"id": dispute_id, "object": "dispute", "charge": self.charge, "payment_intent": self.pi}
        self._webhook(
            "charge.dispute.created",
            opened,
            **obj,
            amount=amount,
            currency=order.currency_code,
            reason=reason,
            status="needs_response",
        )
        if closed:
            at = opened + timedelta(days=5)
            self.gen._event(order=order, type="dispute_closed", at=at, actor=Actor.STRIPE, payload=payload)
            self._webhook("charge.dispute.closed", at, **obj, status=status)


def demo_delete() -> dict[str, int]:
    """Delete every row an earlier run wrote (recognised by its demo ids and email domain)."""
    WebhookEvent = apps.get_model("webhooks", "WebhookEvent")
    demo_pi = {"payment_intent_id__startswith": "pi_demo_"}
    deleted: dict[str, int] = {}
    cart_ids = set(Order.objects.filter(**demo_pi).values_list("cart_id", flat=True))
    cart_ids |= set(PaymentSession.objects.filter(**demo_pi).values_list("cart_id", flat=True))
    cart_ids |= set(Cart.objects.filter(email__endswith=f"@{DEMO_DOMAIN}").values_list("pk", flat=True))
    cart_ids |= set(Cart.objects.filter(customer__email__endswith=f"@{DEMO_DOMAIN}").values_list("pk", flat=True))
    for name, qs in (
        ("orders", Order.objects.filter(**demo_pi)),
        ("ledger", LedgerEntry.objects.filter(**demo_pi)),
        ("disputes", Dispute.objects.filter(**demo_pi)),
        ("attempts", PaymentAttempt.objects.filter(cart_id__in=cart_ids)),
        ("sessions", PaymentSession.objects.filter(cart_id__in=cart_ids)),
        ("webhook events", WebhookEvent.objects.filter(stripe_event_id__startswith="evt_demo_")),
        ("carts", Cart.objects.filter(pk__in=cart_ids)),
    ):
        deleted[name] = qs.delete()[1].get(qs.model._meta.label, 0)
    return deleted


class Command(BaseCommand):
    help = "Generate demo orders, payments, refunds, disputes, abandoned carts and webhook events (no Stripe calls)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--orders", type=int, default=300, help="How many orders (default 300).")
        parser.add_argument("--days", type=int, default=30, help="Spread over the last N days (default 30).")
        parser.add_argument("--seed", type=int, default=None, help="Random seed, for a reproducible history.")
        parser.add_argument("--replace", action="store_true", help="Delete earlier demo rows first.")
        parser.add_argument("--customers", type=int, default=25, help="Demo customer accounts to spread orders over.")

    def handle(self, *args: Any, **options: Any) -> None:
        rng = random.Random(options["seed"])
        call_command("load_demo_catalog", stdout=self.stdout)
        with transaction.atomic():
            if options["replace"]:
                deleted = demo_delete()
                self.stdout.write("Deleted earlier demo rows: " + ", ".join(f"{v} {k}" for k, v in deleted.items()))
            customers = self._customers(options["customers"])
            gen = Generator(
                rng=rng, now=timezone.now(), days=max(options["days"], 1), catalog=_catalog(), customers=customers
            )
            orders = max(options["orders"], 0)
            # Orders are generated in placement order, so display ids grow with time as real ones do.
            for placed in sorted(gen._when() for _ in range(orders)):
                gen.order(placed)
            for _ in range(orders // 8):
                gen.declined()
            for _ in range(orders * 2 // 5):
                gen.abandoned()
            gen.write()
        warned = expiry.order_authorizations_expiry_warn()  # what the hourly beat task would have written
        s = gen.stats
        per_currency = ", ".join(f"{s.get('orders_' + c, 0)} {c.upper()}" for c in CURRENCY_WEIGHTS)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo history over {options['days']} days: {gen.batch.count(Order)} orders ({per_currency}), "
                f"{s.get('awaiting_capture', 0)} awaiting capture, {s.get('canceled', 0)} canceled, "
                f"{s.get('partially_refunded', 0)} partially and {s.get('refunded', 0)} fully refunded, "
                f"{s.get('disputes_open', 0)} open and {s.get('disputes_closed', 0)} closed disputes, "
                f"{s.get('declined', 0)} declined payments, {s.get('abandoned', 0)} abandoned carts, "
                f"{sum(v for k, v in s.items() if k.startswith('webhook_'))} webhook events "
                f"({s.get('webhook_failed', 0)} dead letters, {s.get('webhook_received', 0)} waiting); "
                f"{warned} authorization expiry warnings."
            )
        )

    def _customers(self, count: int) -> list[User]:
        users = []
        for n in range(count):
            email = f"customer{n + 1}@{DEMO_DOMAIN}"
            user = User.objects.filter(email=email).first()
            if user is None:
                user = User(
                    email=email, first_name=FIRST_NAMES[n % len(FIRST_NAMES)], last_name=LAST_NAMES[n % len(LAST_NAMES)]
                )
                user.set_unusable_password()
                user.save()
            users.append(user)
        return users
