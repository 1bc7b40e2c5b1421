"""Demo orders for the back office, made by the services against a private Stripe stand-in. Dev tooling only.

    python -m devtools.demo_orders [--orders 120] [--days 30] [--seed 42] [--stripe-base URL]

Without ``--stripe-base`` it starts its own stand-in (``devtools.localstripe_server``, a free
port on 127.0.0.1, a throwaway store) and stops it afterwards. It uses the database of
``DATABASE_URL`` (the settings' default otherwise) and loads the demo catalog first.

Every order is made the way a real one is, in this process, through the product's services:

* a cart (``carts.services``: items, email, addresses, shipping method), a card tokenized at the
  stand-in, a payment session (``carts.checkout.cart_payment_session_create``), ``complete``
  (``orders.services.order_complete_cart``); some shoppers are signed-in demo customers
  (``customers.services.customer_register``), the rest guests;
* then, by the order's age, what staff did through the services the admin calls: capture
  (sometimes partial: the last item was out of stock), fulfil, ship, deliver, refund (partly or
  fully), cancel; an old authorization nobody captured expires at the stand-in; a few payments
  are disputed there (some disputes won or lost);
* declined payments (a card refused at confirm), carts abandoned before or at payment (some at
  3-D Secure);
* Stripe's webhooks for all of it reach a small receiver on 127.0.0.1 and go through the inbox
  service (``webhooks.services``: verify the signature, store, process), as ``/webhooks/stripe``
  and the worker would; those of a checkout in progress this minute stay waiting (a backlog).

Afterwards ``devtools.timeline`` spreads the orders over the last ``--days`` days (busier in the
evening and on recent days): only timestamps move. Capture, refund and cancel buttons work on
these orders while the stand-in that made them is the one the site talks to (``--stripe-base``
of a running demo); with a private stand-in they are for looking at.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devtools.timeline import Story, timeline_apply, users_joined_at

DEMO_DOMAIN = "demo.example.com"
WEBHOOK_ID = "demo-orders"
STANDIN_API_KEY = "sk_test_localstripe000000000000000000"  # the stand-in accepts any sk_test_ key
CARD_OK = ("4242424242424242", "5555555555554444")
CARD_DECLINED = "4000000000000341"  # attaches, then declined at confirm (card_declined)
CARD_3DS = "4000002760003184"  # requires_action
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
AUTHORIZATION_DAYS = 7  # a card hold lasts 7 days: older orders were captured, canceled or expired
KEEP_FOR_VISITORS = 10  # a variant this low in stock is left to the people trying the demo


class DemoError(Exception):
    """A step of the demo failed; the message says which."""


# --- The stand-in and its webhooks -------------------------------------------------------------


class StandIn:
    """The Stripe stand-in over HTTP, for what a browser, a cardholder or Stripe itself does."""

    def __init__(self, *, base_url: str, api_key: str = STANDIN_API_KEY) -> None:
        self.base_url, self.api_key = base_url.rstrip("/"), api_key

    def post(self, path: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps(data or {}).encode()
        request = urllib.request.Request(self.base_url + path, data=body, method="POST")  # noqa: S310 - loopback
        request.add_header("Authorization", f"Bearer {self.api_key}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise DemoError(f"POST {path} at the stand-in answered {exc.code}: {exc.read()[:300]!r}") from None
        return json.loads(raw) if raw.strip() else {}

    def exists(self, path: str) -> bool:
        """Whether ``GET path`` finds the object (404: it does not)."""
        request = urllib.request.Request(self.base_url + path)  # noqa: S310 - loopback
        request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
                return not json.loads(response.read()).get("deleted")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise DemoError(f"GET {path} at the stand-in answered {exc.code}") from None

    def card_token(self, number: str) -> str:
        """What Stripe.js ``createToken`` does in the shopper's browser."""
        card = {"number": number, "exp_month": 12, "exp_year": time.gmtime().tm_year + 4, "cvc": "123"}
        return str(self.post("/v1/tokens", {"card": card})["id"])

    def webhook_register(self, *, url: str, secret: str, events: list[str]) -> None:
        self.post(f"/_config/webhooks/{WEBHOOK_ID}", {"url": url, "secret": secret, "events": events})

    def webhook_unregister(self) -> None:
        # localstripe cannot delete a webhook: re-register it for no event type.
        self.post(f"/_config/webhooks/{WEBHOOK_ID}", {"url": "http://127.0.0.1:9/", "secret": "off", "events": []})

    def drain(self) -> None:
        """Until every webhook delivery the stand-in started has been answered."""
        self.post("/_control/webhooks/drain")


class Receiver:
    """Webhook deliveries from the stand-in, kept as they arrived (body and signature) for the inbox."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[bytes, str]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.deliveries.append((body, self.headers.get("Stripe-Signature", "")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def take(self) -> list[tuple[bytes, str]]:
        with self.lock:
            taken, self.deliveries = self.deliveries, []
        return taken

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- What happens to each order -----------------------------------------------------------------


@dataclass
class Fate:
    """What happened to one order after it was placed."""

    kind: str  # awaiting (capture), canceled, expired, captured
    partial_capture: bool = False
    refund: str = ""  # "", partial, full
    dispute: str = ""  # "", open, won, lost


def _fate(rng: random.Random, age: timedelta) -> Fate:
    """The old generator's proportions, by the order's age."""
    if age < timedelta(days=AUTHORIZATION_DAYS) and (age < timedelta(days=1) or rng.random() < 0.22):
        # still authorized (a card hold lasts 7 days); a few released by staff
        return Fate("canceled" if rng.random() < 0.06 and age > timedelta(hours=2) else "awaiting")
    roll = rng.random()
    if roll < 0.05:  # the customer changed their mind before capture
        return Fate("canceled")
    if roll < 0.08 and age > timedelta(days=AUTHORIZATION_DAYS):
        return Fate("expired")
    refund_roll = rng.random()
    refund = "full" if refund_roll < 0.05 else "partial" if refund_roll < 0.18 else ""
    dispute = rng.choice(["open", "won", "lost"]) if not refund == "full" and rng.random() < 0.035 else ""
    return Fate("captured", partial_capture=rng.random() < 0.06, refund=refund, dispute=dispute)


def fates_plan(rng: random.Random, *, placed: list[datetime], now: datetime) -> list[tuple[datetime, Fate]]:
    """Each order's fate by its age; from 8 orders on, at least one order awaiting capture, one
    canceled and one refunded (a small demo still shows every queue and every figure)."""
    plan = [(at, _fate(rng, now - at)) for at in sorted(placed)]
    if len(plan) < 8:
        return plan
    kinds = {fate.kind for _, fate in plan}
    if "awaiting" not in kinds:  # someone ordered a few hours ago
        plan[-1] = (max(plan[-1][0], now - timedelta(hours=rng.uniform(1, 6))), Fate("awaiting"))
    captured = [n for n, (_, fate) in enumerate(plan) if fate.kind == "captured" and not fate.dispute]
    if "canceled" not in kinds and len(captured) > 1:
        n = captured.pop(rng.randrange(len(captured)))
        plan[n] = (plan[n][0], Fate("canceled"))
    if captured and not any(fate.refund for _, fate in plan):
        n = captured[0]  # the oldest: delivered before the customer asked for part of the money back
        plan[n] = (plan[n][0], Fate("captured", refund="partial"))
    return plan


# --- The generator ------------------------------------------------------------------------------


@dataclass
class Shop:
    regions: dict[str, Any]  # currency -> Region
    shipping: dict[str, list[Any]]  # currency -> ShippingOption, cheapest first


@dataclass
class Stats:
    counts: dict[str, int] = field(default_factory=dict)

    def bump(self, key: str, by: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + by


class Generator:
    def __init__(
        self,
        *,
        rng: random.Random,
        now: datetime,
        days: int,
        standin: StandIn,
        receiver: Receiver,
        staff_id: str | None,
        customers: list[Any],
    ) -> None:
        self.rng, self.now, self.days = rng, now, days
        self.standin, self.receiver = standin, receiver
        self.staff: dict[str, Any] = {"actor": "staff", "user_id": staff_id}
        self.customers = customers
        self.shop = _shop()
        self.stories: list[Story] = []
        self.stats = Stats()

    # --- small helpers

    def when(self) -> datetime:
        """A moment in the period; busier in the evening and on recent days."""
        day = min(int(self.rng.triangular(0, self.days, 0)), self.days - 1)
        hour = self.rng.choices(range(24), weights=HOURLY_WEIGHTS)[0]
        moment = (self.now - timedelta(days=day)).replace(
            hour=hour, minute=self.rng.randrange(60), second=self.rng.randrange(60)
        )
        if moment > self.now:
            moment -= timedelta(days=1)
        return moment

    def currency(self) -> str:
        codes = [c for c in CURRENCY_WEIGHTS if c in self.shop.regions]
        return self.rng.choices(codes, weights=[CURRENCY_WEIGHTS[c] for c in codes])[0]

    def person(self, currency: str) -> tuple[str, dict[str, Any], Any | None]:
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        country, cities = CITIES[currency]
        if currency == "eur":
            country = self.rng.choice(self.shop.regions["eur"].countries or ["DE"])
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

    def webhooks(self, *, process: bool = True) -> None:
        """Stripe's deliveries so far through the inbox: verified and stored, then processed as the
        worker would (``process=False``: left waiting for the worker)."""
        from webhooks import services as webhooks

        self.standin.drain()
        deliveries = self.receiver.take()
        for body, signature in deliveries:
            receipt = webhooks.webhook_event_receive(payload=body, sig_header=signature)
            if receipt.created and receipt.id and process:
                webhooks.webhook_event_process(event_id=receipt.id)
        self.stats.bump("webhook_events", len(deliveries))

    def cart(self, *, currency: str, email: str, address: dict[str, Any] | None, customer: Any | None) -> str:
        """A cart with one to three lines of what is in stock (the storefront's product list)."""
        from carts import services as carts
        from catalog import selectors as catalog

        region = self.shop.regions[currency]
        variants = [
            v
            for p in catalog.product_list(currency_code=currency)
            for v in p.variants.all()
            if getattr(v, "region_prices", None) and _available(v) >= KEEP_FOR_VISITORS
        ]
        variants.sort(key=lambda v: v.sku)
        picks = self.rng.sample(variants, k=min(self.rng.choice([1, 1, 2, 2, 3]), len(variants)))
        if not picks:
            raise DemoError(f"nothing in stock in {currency.upper()}: load_demo_catalog restocks")
        items = [{"variant_id": v.id, "quantity": self.rng.choice([1, 1, 1, 2, 2, 3])} for v in picks]
        cart = carts.cart_create(
            region_id=region.id, email=email, items=items, customer_id=customer.pk if customer else None
        )
        user_id = customer.pk if customer else None
        if address is not None:
            carts.cart_update(cart_id=cart.id, user_id=user_id, shipping_address=address, billing_address=address)
            options = self.shop.shipping[currency]
            option = self.rng.choices(options, weights=[8, 2][: len(options)])[0]
            carts.cart_shipping_method_set(cart_id=cart.id, user_id=user_id, option_id=option.id)
        return str(cart.id)

    def pay(self, *, cart_id: str, customer: Any | None, card: str) -> Any:
        from carts import checkout

        return checkout.cart_payment_session_create(
            cart_id=cart_id,
            user_id=customer.pk if customer else None,
            card_token=self.standin.card_token(card),
        )

    # --- one order

    def order(self, placed: datetime, fate: Fate) -> None:
        from common.errors import ApplicationError
        from orders import services as orders

        rng = self.rng
        currency = self.currency()
        email, address, customer = self.person(currency)
        story = Story(placed_at=placed)
        story.mark(placed - timedelta(minutes=rng.randint(3, 40)))  # browsing, then the cart
        cart_id = self.cart(currency=currency, email=email, address=address, customer=customer)
        story.cart_id = cart_id
        story.mark(placed - timedelta(minutes=1))
        if rng.random() < 0.12:  # the first card is declined; another one is tried
            try:
                self.pay(cart_id=cart_id, customer=customer, card=CARD_DECLINED)
            except ApplicationError:
                self.stats.bump("declined_then_paid")
        result = self.pay(cart_id=cart_id, customer=customer, card=rng.choice(CARD_OK))
        story.mark(placed)
        order, _ = orders.order_complete_cart(
            cart_id=cart_id,
            payment_intent_id=result.session.payment_intent_id,
            user_id=customer.pk if customer else None,
        )
        story.order_id, story.payment_intent_id = str(order.id), str(order.payment_intent_id)
        self.stories.append(story)
        self.webhooks()
        self.stats.bump(f"orders_{currency}")
        self.after(story=story, order_id=str(order.id), placed=placed, fate=fate)

    def after(self, *, story: Story, order_id: str, placed: datetime, fate: Fate) -> None:
        """What happened to the order since it was placed, as its fate says (``fates_plan``)."""
        from common.money import charge_increment
        from orders import fulfillment
        from orders import services as orders
        from orders.selectors import order_get

        rng, age = self.rng, self.now - placed
        if fate.kind == "awaiting":
            self.stats.bump("awaiting_capture")
            return
        if fate.kind == "canceled":  # released by staff: the customer asked to cancel before capture
            story.mark(placed + min(age / 2, timedelta(hours=rng.uniform(1, 30))))
            orders.order_payment_cancel(order_id=order_id, reason="customer asked to cancel", **self.staff)
            self.webhooks()
            self.stats.bump("canceled")
            return
        if fate.kind == "expired":  # nobody captured it: the authorization expired at Stripe
            story.mark(placed + timedelta(days=AUTHORIZATION_DAYS))
            self.standin.post(f"/_control/payment_intents/{story.payment_intent_id}/expire")
            self.webhooks()
            self.stats.bump("expired")
            return

        # Captured by staff within two days; sometimes partially (the last item was out of stock).
        order = order_get(order_id=order_id)
        lines = list(order.lines.order_by("position"))
        captured_at = min(placed + timedelta(hours=rng.uniform(0.5, 40)), self.now - timedelta(minutes=5))
        partial = fate.partial_capture and len(lines) > 1 and 0 < lines[-1].total < order.total
        amount = order.total - lines[-1].total if partial else order.total
        story.mark(captured_at)
        orders.order_payment_capture(
            order_id=order_id, amount=amount, reason="last item out of stock" if partial else "", **self.staff
        )
        self.webhooks()
        self.stats.bump("partially_captured" if partial else "captured")

        moment = captured_at
        steps = [
            ("fulfilled", timedelta(hours=rng.uniform(2, 20))),
            ("shipped", timedelta(hours=rng.uniform(2, 30))),
            ("delivered", timedelta(days=rng.uniform(1.5, 5))),
        ]
        for step, delay in steps:
            if (fate.refund == "full" and step == "shipped") or moment + delay > self.now:
                break
            moment += delay
            story.mark(moment)
            if step == "fulfilled":
                fulfillment.order_fulfil(order_id=order_id, **self.staff)
            elif step == "shipped":
                fulfillment.order_ship(
                    order_id=order_id,
                    carrier=rng.choice(CARRIERS),
                    tracking_number=f"1Z{rng.randrange(10**9, 10**10)}",
                    **self.staff,
                )
            else:
                fulfillment.order_deliver(order_id=order_id, **self.staff)
        refund_at = min(moment + timedelta(hours=rng.uniform(2, 72)), self.now - timedelta(minutes=2))
        if fate.refund and refund_at > moment:
            increment = charge_increment(order.currency_code)
            full = fate.refund == "full"
            value = amount if full else max(amount // rng.choice([2, 3, 4]) // increment * increment, increment)
            reasons = ["damaged in transit", "wrong colour", "customer asked for a refund"]
            story.mark(refund_at)
            orders.order_payment_refund(order_id=order_id, amount=value, reason=rng.choice(reasons), **self.staff)
            self.webhooks()
            self.stats.bump("refunded" if full else "partially_refunded")
        if fate.dispute:  # after what staff did (the timeline keeps each order's phases in order)
            opened = max(captured_at + timedelta(days=rng.uniform(1, 10)), moment, refund_at) + timedelta(minutes=1)
            if opened < self.now:
                self.dispute(story=story, opened=opened, outcome=fate.dispute)

    def dispute(self, *, story: Story, opened: datetime, outcome: str) -> None:
        """The cardholder disputes the payment at their bank; some disputes are decided since."""
        reason = self.rng.choice(["fraudulent", "product_not_received", "product_unacceptable"])
        story.mark(opened)
        dispute = self.standin.post("/_control/disputes", {"payment_intent": story.payment_intent_id, "reason": reason})
        self.webhooks()
        closed = opened + timedelta(days=5)
        if outcome in ("won", "lost") and closed < self.now:
            story.mark(closed)
            self.standin.post(f"/_control/disputes/{dispute['id']}/close", {"outcome": outcome})
            self.webhooks()
            self.stats.bump("disputes_closed")
        else:
            self.stats.bump("disputes_open")

    # --- carts without an order

    def declined(self) -> None:
        from common.errors import ApplicationError

        at, currency = self.when(), self.currency()
        email, address, customer = self.person(currency)
        story = Story(placed_at=at)
        story.mark(at - timedelta(minutes=self.rng.randint(3, 40)))
        story.cart_id = self.cart(currency=currency, email=email, address=address, customer=customer)
        story.mark(at)
        try:
            self.pay(cart_id=story.cart_id, customer=customer, card=CARD_DECLINED)
        except ApplicationError:
            pass
        else:
            raise DemoError("the stand-in accepted a card that Stripe declines")
        self._session_intent(story)
        self.stories.append(story)
        self.webhooks()
        self.stats.bump("declined")

    def abandoned(self, number: int) -> None:
        """Left at some step of the checkout: the first four carts one at each step, then at random."""
        at, currency = self.when(), self.currency()
        email, address, customer = self.person(currency)
        steps = ("3-D Secure", "payment", "address", "items")
        step = steps[number] if number < len(steps) else self.rng.choices(steps, weights=[5, 20, 25, 50])[0]
        with_address = step != "items"
        story = Story(placed_at=at)
        story.mark(at - timedelta(minutes=self.rng.randint(3, 40)))
        # the checkout asks for the email first: every demo cart has one
        story.cart_id = self.cart(
            currency=currency, email=email, address=address if with_address else None, customer=customer
        )
        if step in ("3-D Secure", "payment"):  # reached the payment step, never paid
            story.mark(at)
            if step == "3-D Secure":
                self.pay(cart_id=story.cart_id, customer=customer, card=CARD_3DS)
            else:  # the session opened, the card never entered
                from carts import checkout

                checkout.cart_payment_session_create(cart_id=story.cart_id, user_id=customer.pk if customer else None)
            self._session_intent(story)  # its webhooks are processed at the end (the last few wait)
        self.stories.append(story)
        self.stats.bump("abandoned")

    def paying_now(self) -> None:
        """A shopper at 3-D Secure this minute: Stripe's events about it have not been processed yet
        (the inbox's backlog, recent as a real one is)."""
        currency = self.currency()
        email, address, customer = self.person(currency)
        story = Story(placed_at=self.now)
        story.mark(self.now - timedelta(minutes=2))
        story.cart_id = self.cart(currency=currency, email=email, address=address, customer=customer)
        story.mark(self.now)
        self.pay(cart_id=story.cart_id, customer=customer, card=CARD_3DS)
        self._session_intent(story)
        self.stories.append(story)
        self.webhooks(process=False)

    def _session_intent(self, story: Story) -> None:
        from payments import selectors as payments

        session = payments.payment_session_active_for_cart(cart_id=story.cart_id)
        story.payment_intent_id = str(session.payment_intent_id or "") if session else ""


def _available(variant: Any) -> int:
    """Units a cart may still take (``product_list``'s variants: stock less active holds)."""
    if not variant.manage_inventory or variant.allow_backorder:
        return 10**6
    stock = getattr(variant, "stock", None)
    return stock.on_hand - variant.held if stock is not None else 0


def _shop() -> Any:
    from catalog import selectors as catalog

    regions: dict[str, Any] = {}
    for region in catalog.region_list().order_by("name"):
        if region.currency_code in CURRENCY_WEIGHTS:
            regions.setdefault(region.currency_code, region)
    shipping = {
        code: list(catalog.shipping_option_list(region_id=r.id).order_by("amount")) for code, r in regions.items()
    }
    return Shop(regions={c: r for c, r in regions.items() if shipping[c]}, shipping=shipping)


def _customers(count: int, *, standin: StandIn) -> list[Any]:
    """Demo customer accounts (registered through the customers service; nobody signs in as them).

    An account from an earlier run is reused when this stand-in knows its Stripe Customer (or it
    has none yet); one whose Customer lived in another run's private stand-in is passed over."""
    from customers import services as customers
    from customers.models import User
    from payments import selectors as payments

    users: list[Any] = []
    number = 0
    while len(users) < count:
        number += 1
        email = f"customer{number}@{DEMO_DOMAIN}"
        user = User.objects.filter(email=email).first()
        if user is None:
            user = customers.customer_register(
                email=email,
                password=secrets.token_urlsafe(12),
                first_name=FIRST_NAMES[number % len(FIRST_NAMES)],
                last_name=LAST_NAMES[number % len(LAST_NAMES)],
            )
        else:
            stripe_id = payments.stripe_customer_id_for_user(user_id=user.pk)
            if stripe_id and not standin.exists(f"/v1/customers/{stripe_id}"):
                continue
        users.append(user)
    return users


@dataclass
class Summary:
    orders: int
    stats: dict[str, int]
    webhooks_waiting: int
    warned: int
    dated: int
    stories: list[Story]

    def line(self, days: int) -> str:
        s = self.stats.get
        per_currency = ", ".join(f"{s('orders_' + c, 0)} {c.upper()}" for c in CURRENCY_WEIGHTS)
        return (
            f"Demo history over {days} days: {self.orders} orders ({per_currency}), "
            f"{s('awaiting_capture', 0)} awaiting capture, {s('canceled', 0)} canceled, {s('expired', 0)} expired, "
            f"{s('partially_refunded', 0)} partially and {s('refunded', 0)} fully refunded, "
            f"{s('disputes_open', 0)} open and {s('disputes_closed', 0)} closed disputes, "
            f"{s('declined', 0) + s('declined_then_paid', 0)} declined payments, {s('abandoned', 0)} abandoned carts, "
            f"{s('webhook_events', 0)} webhook events ({self.webhooks_waiting} waiting); "
            f"{self.warned} authorization expiry warnings; {self.dated} rows dated."
        )


def demo_orders_generate(
    *,
    stripe_base: str,
    orders: int = 120,
    days: int = 30,
    seed: int | None = None,
    customers: int = 6,
    declined: int | None = None,
    abandoned: int | None = None,
    staff_email: str = "staff@example.com",
    webhook_secret: str | None = None,
    timeline: bool = True,
) -> Summary:
    """Make the demo history through the services against the stand-in at ``stripe_base``.

    The settings must point the payments gateway at that stand-in (``STRIPE_API_BASE``;
    ``main`` does it, tests use the localstripe fixture). ``webhook_secret`` is the secret the
    stand-in signs with (default: ``settings.STRIPE_WEBHOOK_SECRET``). ``timeline=False`` leaves
    every row dated now (``devtools.timeline.timeline_apply(summary.stories)`` dates them later).
    """
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from customers.models import User
    from orders import expiry
    from webhooks import handlers
    from webhooks import selectors as webhook_selectors
    from webhooks.models import WebhookEventStatus

    secret = webhook_secret or settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise DemoError("STRIPE_WEBHOOK_SECRET is empty: the inbox would refuse every delivery")
    call_command("load_demo_catalog", stdout=open(os.devnull, "w"))  # noqa: SIM115 - closed at exit
    rng = random.Random(seed)
    standin = StandIn(base_url=stripe_base)
    receiver = Receiver()
    # the event types the handlers act on, as the production endpoint subscribes to (runbook, step 2)
    standin.webhook_register(url=receiver.url, secret=secret, events=sorted(handlers.HANDLERS))
    try:
        staff = User.objects.filter(email=staff_email, is_staff=True).first()
        gen = Generator(
            rng=rng,
            now=timezone.now(),
            days=max(days, 1),
            standin=standin,
            receiver=receiver,
            staff_id=str(staff.pk) if staff else None,
            customers=_customers(customers, standin=standin),
        )
        # Orders are placed in time order, so display ids grow with time as real ones do.
        placed = sorted(gen.when() for _ in range(max(orders, 0)))
        for at, fate in fates_plan(random.Random(rng.random()), placed=placed, now=gen.now):
            gen.order(at, fate)
        for _ in range(orders // 8 if declined is None else declined):
            gen.declined()
        for number in range(orders * 2 // 5 if abandoned is None else abandoned):
            gen.abandoned(number)
        gen.webhooks()
        gen.paying_now()
    finally:
        try:
            standin.webhook_unregister()
        finally:
            receiver.close()
    dated = 0
    if timeline:
        dated = timeline_apply(gen.stories)
        users_joined_at(user_ids=[c.pk for c in gen.customers], at=gen.now - timedelta(days=gen.days + 3))
    waiting = webhook_selectors.webhook_inbox_counts()[WebhookEventStatus.RECEIVED]
    warned = expiry.order_authorizations_expiry_warn()  # what the hourly beat task would have written
    return Summary(
        orders=sum(1 for s in gen.stories if s.order_id),
        stats=dict(gen.stats.counts),
        webhooks_waiting=waiting,
        warned=warned,
        dated=dated,
        stories=gen.stories,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=120, help="How many orders (default 120).")
    parser.add_argument("--days", type=int, default=30, help="Spread over the last N days (default 30).")
    parser.add_argument("--seed", type=int, default=None, help="Random seed, for a reproducible history.")
    parser.add_argument("--customers", type=int, default=6, help="Demo customer accounts to spread orders over.")
    parser.add_argument("--stripe-base", help="A running stand-in (a demo's); default: start a private one.")
    args = parser.parse_args(argv)

    from devtools.localstripe_server import start_localstripe, stop

    process = None
    stripe_base = args.stripe_base
    if stripe_base is None:
        process, stripe_base = start_localstripe()
    secret = "whsec_demo_orders_" + secrets.token_hex(12)
    os.environ.update(
        {
            "STRIPE_API_BASE": stripe_base,
            "STRIPE_API_KEY": os.environ.get("STRIPE_API_KEY", STANDIN_API_KEY),
            "STRIPE_WEBHOOK_SECRET": secret,
            "STRIPE_LIVE_MODE": "false",
            "STRIPE_CAPTURE_METHOD": "manual",
            # localstripe rejects these real-Stripe parameters (docs/localstripe.md).
            "STRIPE_AUTOMATIC_PAYMENT_METHODS": "false",
            "STRIPE_SEND_SETUP_FUTURE_USAGE": "false",
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "ERROR"),  # the progress line, not the services' log lines
        }
    )
    os.environ.setdefault("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    started = time.monotonic()
    try:
        import django

        django.setup()
        summary = demo_orders_generate(
            stripe_base=stripe_base,
            orders=args.orders,
            days=args.days,
            seed=args.seed,
            customers=args.customers,
            webhook_secret=secret,
        )
    finally:
        if process is not None:
            stop(process)
    print(f"{summary.line(args.days)} ({time.monotonic() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    raise SystemExit(main())
