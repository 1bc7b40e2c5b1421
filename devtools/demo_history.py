"""Demo shoppers and a few weeks of past orders, made the way real ones are. Dev tooling only.

    python -m devtools.demo_history --base-url http://127.0.0.1:8000 --stripe-base http://127.0.0.1:8420

``devtools.demo`` runs it once the server answers ``/health/ready``; it does nothing when the
demo shoppers exist already. Like ``devtools.demo_orders`` (in its own process, through the
services, for volume and screenshots), everything here goes through the product's own paths,
but over HTTP against the demo's server and stand-in, so every button in the admin works on
these orders afterwards:

* shoppers register over the store API (``POST /store/customers``) and sign in for a token;
* each order is a real checkout over HTTP: cart, items, addresses, shipping, a card tokenized
  at the Stripe stand-in with the publishable key (as Stripe.js does), a payment session,
  ``complete``. Some shoppers save their card and pay with it next time; some first try a card
  that is declined (4000 0000 0000 0002) and then pay with another; some carts are abandoned;
* staff then act on the orders through the same services the admin calls (capture, cancel,
  refund, fulfil, ship with a tracking number, deliver), as the demo staff user;
* when Stripe's webhooks for all of it are processed, the rows' timestamps are moved back
  onto a timeline over the last ``--days`` days: each phase of an order (placed, captured,
  shipped, delivered, refunded) gets its own moment, and every timestamp written during that
  phase (order, cart, events, ledger, sessions, webhook inbox, emails) moves with it
  (``devtools.timeline``). Only timestamps move; amounts, statuses and Stripe's objects are
  as the services left them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import django

from devtools import timeline
from devtools.timeline import Story

SHOPPERS: list[tuple[str, str, str, dict[str, str]]] = [
    # email, first name, last name, address (without names)
    (
        "ada.lovelace@example.org",
        "Ada",
        "Lovelace",
        {
            "address_1": "12 Loom Street",
            "city": "Springfield",
            "province": "IL",
            "postal_code": "62701",
            "country_code": "US",
        },
    ),
    (
        "grace.hopper@example.org",
        "Grace",
        "Hopper",
        {
            "address_1": "400 Harbor Way",
            "city": "Portland",
            "province": "OR",
            "postal_code": "97201",
            "country_code": "US",
        },
    ),
    (
        "hana.sato@example.org",
        "Hana",
        "Sato",
        {
            "address_1": "1-2-3 Nishiki",
            "city": "Kyoto",
            "province": "Kyoto",
            "postal_code": "604-8111",
            "country_code": "JP",
        },
    ),
    (
        "lena.weber@example.org",
        "Lena",
        "Weber",
        {"address_1": "Stoffstrasse 5", "city": "Berlin", "postal_code": "10115", "country_code": "DE"},
    ),
    (
        "camille.martin@example.org",
        "Camille",
        "Martin",
        {"address_1": "8 rue des Tisserands", "city": "Lyon", "postal_code": "69002", "country_code": "FR"},
    ),
    (
        "noura.alsabah@example.org",
        "Noura",
        "Al-Sabah",
        {"address_1": "Block 3, Street 12", "city": "Kuwait City", "postal_code": "13001", "country_code": "KW"},
    ),
]
GUEST_ADDRESS = {
    "address_1": "77 Selvedge Road",
    "city": "Austin",
    "province": "TX",
    "postal_code": "78701",
    "country_code": "US",
}
CARD_OK = ("4242424242424242", "5555555555554444")
CARD_DECLINED = "4000000000000002"
CARRIERS = ("UPS", "DHL", "Yamato", "La Poste")


class HistoryError(Exception):
    """A step of the history failed; the message says which."""


class Api:
    """The store API and the Stripe stand-in's token endpoint, over HTTP (as a storefront would)."""

    def __init__(self, *, base_url: str, stripe_base: str, publishable_key: str, secret_key: str) -> None:
        from devtools.checkout_flow import HttpClient

        self.http = HttpClient(timeout=30.0)
        self.store = base_url.rstrip("/") + "/store"
        self.stripe_base, self.publishable_key, self.secret_key = stripe_base.rstrip("/"), publishable_key, secret_key

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        expect: tuple[int, ...] = (200, 201),
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if method == "POST":
            headers["Idempotency-Key"] = str(uuid.uuid4())
        status, raw = self.http.request(method, self.store + path, json_body=body, headers=headers)
        payload = json.loads(raw) if raw.strip() else {}
        if status not in expect:
            raise HistoryError(f"{method} {path} answered {status}: {raw[:300].decode(errors='replace')}")
        return status, payload

    def card_token(self, number: str) -> str:
        form = {
            "card[number]": number,
            "card[exp_month]": "12",
            "card[exp_year]": str(time.gmtime().tm_year + 4),
            "card[cvc]": "123",
            "key": self.publishable_key,
        }
        status, raw = self.http.request("POST", f"{self.stripe_base}/v1/tokens", form=form)
        if status != 200:
            raise HistoryError(f"tokenizing a card answered {status}")
        return json.loads(raw)["id"]

    def confirm_card(self, *, payment_intent_id: str, number: str) -> None:
        """What Stripe.js's confirmCardPayment does for a card the shopper saves, against the stand-in:
        a card PaymentMethod set on the intent, then confirm (localstripe's confirm takes no
        ``payment_method``; docs/localstripe.md)."""
        card = {
            "type": "card",
            "card[number]": number,
            "card[exp_month]": "12",
            "card[exp_year]": str(time.gmtime().tm_year + 4),
            "card[cvc]": "123",
        }
        method = self._stripe_post("/v1/payment_methods", card)["id"]
        self._stripe_post(f"/v1/payment_intents/{payment_intent_id}", {"payment_method": method})
        self._stripe_post(f"/v1/payment_intents/{payment_intent_id}/confirm", {})

    def _stripe_post(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        status, raw = self.http.request(
            "POST", self.stripe_base + path, form=form, headers={"Authorization": f"Bearer {self.secret_key}"}
        )
        if status != 200:
            raise HistoryError(f"POST {path} at the Stripe stand-in answered {status}: {raw[:200]!r}")
        return json.loads(raw)


def _checkout(
    api: Api,
    rng: random.Random,
    *,
    email: str,
    names: tuple[str, str],
    address: dict[str, str],
    token: str | None,
    saved: dict[str, str],
    regions: dict[str, dict[str, Any]],
    variants: dict[str, list[dict[str, Any]]],
    declines: int,
    story: Story,
) -> dict[str, Any]:
    region = next(r for r in regions.values() if address["country_code"] in r["countries"])
    _, body = api.call("POST", "/carts", {"region_id": region["id"]}, token=token)
    cart_id = body["cart"]["id"]
    story.cart_id = cart_id
    for variant in rng.sample(variants[region["id"]], k=rng.choice((1, 1, 2, 3))):
        api.call(
            "POST",
            f"/carts/{cart_id}/line-items",
            {"variant_id": variant["id"], "quantity": rng.randint(1, 3)},
            token=token,
        )
    full = {"first_name": names[0], "last_name": names[1], **address}
    api.call(
        "POST", f"/carts/{cart_id}", {"email": email, "shipping_address": full, "billing_address": full}, token=token
    )
    if story.order_id == "abandon":
        return {}
    _, options = api.call("GET", f"/shipping-options?cart_id={cart_id}", token=token)
    option = rng.choice(options["shipping_options"])
    api.call("POST", f"/carts/{cart_id}/shipping-methods", {"option_id": option["id"]}, token=token)
    for _ in range(declines):
        status, _ = api.call(
            "POST",
            f"/carts/{cart_id}/payment-sessions",
            {"provider_id": "stripe", "card_token": api.card_token(CARD_DECLINED)},
            token=token,
            expect=(402,),
        )
    if token and email in saved and rng.random() < 0.7:
        pay: dict[str, Any] = {"payment_method_id": saved[email]}  # confirmed by the server
    elif token and email not in saved:
        pay = {"save_payment_method": True}  # confirmed by "Stripe.js" below, as the storefront does
    else:
        pay = {"card_token": api.card_token(rng.choice(CARD_OK))}
    _, body = api.call("POST", f"/carts/{cart_id}/payment-sessions", {"provider_id": "stripe", **pay}, token=token)
    session = body["payment_session"]
    if pay.get("save_payment_method"):
        api.confirm_card(payment_intent_id=session["data"]["payment_intent_id"], number=rng.choice(CARD_OK))
    elif session["status"] not in ("authorized", "succeeded"):
        raise HistoryError(f"cart {cart_id}: payment session {session['status']}")
    for _ in range(50):  # 409 cart_completing: Stripe's webhook is placing the order right now; ask again
        status, body = api.call(
            "POST",
            f"/carts/{cart_id}/complete",
            {"payment_intent_id": session["data"]["payment_intent_id"]},
            token=token,
            expect=(200, 201, 409),
        )
        if status != 409:
            break
        time.sleep(0.2)
    else:
        raise HistoryError(f"cart {cart_id}: still completing after 10 s")
    if token and email not in saved and pay.get("save_payment_method"):
        _, cards = api.call("GET", "/customers/me/payment-methods", token=token)
        if cards["payment_methods"]:
            saved[email] = cards["payment_methods"][0]["id"]
    return body["order"]


def _staff_story(rng: random.Random, *, order: dict[str, Any], story: Story, staff_id: str, now: datetime) -> None:
    """What staff did to the order afterwards, by its age: old orders delivered, recent ones still authorized."""
    from orders import fulfillment
    from orders import services as orders

    age = now - story.placed_at
    staff: dict[str, Any] = {"actor": "staff", "user_id": staff_id}
    if age < timedelta(days=2):
        return  # still authorized: the "to capture" queue
    if rng.random() < 0.08:
        story.mark(story.placed_at + timedelta(hours=rng.randint(2, 20)))
        orders.order_payment_cancel(order_id=order["id"], reason="Customer asked to cancel before shipping", **staff)
        return
    story.mark(story.placed_at + timedelta(hours=rng.randint(3, 26)))
    orders.order_payment_capture(order_id=order["id"], **staff)
    fulfillment.order_fulfil(order_id=order["id"], **staff)
    if age < timedelta(days=3):
        return
    story.mark(story.placed_at + timedelta(hours=rng.randint(28, 50)))
    fulfillment.order_ship(
        order_id=order["id"],
        carrier=rng.choice(CARRIERS),
        tracking_number=f"1Z{rng.randrange(10**15, 10**16)}",
        **staff,
    )
    if age < timedelta(days=6):
        return
    story.mark(story.placed_at + timedelta(days=rng.randint(3, 5), hours=rng.randint(0, 12)))
    fulfillment.order_deliver(order_id=order["id"], **staff)
    if rng.random() < 0.2 and age > timedelta(days=8):
        story.mark(story.placed_at + timedelta(days=rng.randint(6, 8)))
        amount = max(order["items"][0]["total"] // 2, 100)
        orders.order_payment_refund(order_id=order["id"], amount=amount, reason="A length arrived flawed", **staff)


def _drain_webhooks(timeout: float = 90.0) -> None:
    """Until Stripe's events for all of it are processed (the timeline must not move under a worker)."""
    from webhooks.models import WebhookEvent, WebhookEventStatus

    deadline, quiet_since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        busy = WebhookEvent.objects.filter(
            status__in=[WebhookEventStatus.RECEIVED, WebhookEventStatus.PROCESSING]
        ).exists()
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 2.0:
            return
        time.sleep(0.3)
    print("  (some webhook events were still waiting; their timestamps stay as they are)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Demo shoppers and past orders through the real API and services.")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--stripe-base", default="http://127.0.0.1:8420")
    parser.add_argument(
        "--publishable-key", default=os.environ.get("STRIPE_PUBLISHABLE_KEY", "pk_test_localstripe_dev")
    )
    parser.add_argument("--secret-key", default=os.environ.get("STRIPE_API_KEY", ""), help="The stand-in's API key.")
    parser.add_argument(
        "--password", default=os.environ.get("DEMO_SHOPPER_PASSWORD", ""), help="The shoppers' password."
    )
    parser.add_argument("--orders", type=int, default=30)
    parser.add_argument("--abandoned", type=int, default=5)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--staff-email", default="staff@example.com")
    args = parser.parse_args(argv)
    if not args.password:
        parser.error("--password (or DEMO_SHOPPER_PASSWORD) is required")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.apps import apps

    if not apps.ready:  # run from a test, Django is set up: setting it up again reconfigures logging
        django.setup()
    from django.utils import timezone

    from customers.models import User

    if User.objects.filter(email=SHOPPERS[0][0]).exists():
        print("  demo shoppers and their orders are there already", flush=True)
        return 0
    started = time.monotonic()
    rng = random.Random(args.seed)
    now = timezone.now()
    api = Api(
        base_url=args.base_url,
        stripe_base=args.stripe_base,
        publishable_key=args.publishable_key,
        secret_key=args.secret_key,
    )
    staff_id = str(User.objects.get(email=args.staff_email).pk)
    _, body = api.call("GET", "/regions")
    regions = {r["id"]: r for r in body["regions"]}
    variants: dict[str, list[dict[str, Any]]] = {}
    for region_id in regions:
        _, page = api.call("GET", f"/products?region_id={region_id}&limit=100")
        variants[region_id] = [
            v
            for p in page["products"]
            for v in p["variants"]
            if v["price"] and v["in_stock"] and v["sku"] != "SLK-CHR-IVR"
        ]  # keep the last metres of silk for the visitor

    def register(shopper: tuple[str, str, str, dict[str, str]]) -> tuple[str, str]:
        email, first, last, _ = shopper
        api.call(
            "POST", "/customers", {"email": email, "password": args.password, "first_name": first, "last_name": last}
        )
        _, body = api.call("POST", "/auth/token", {"email": email, "password": args.password})
        return email, body["token"]

    with ThreadPoolExecutor(max_workers=3) as pool:  # password hashing dominates: use both cores
        tokens = dict(pool.map(register, SHOPPERS))

    placed = sorted(now - timedelta(days=args.days) * rng.random() ** 1.3 for _ in range(args.orders))
    plans: dict[str, list[tuple[int, datetime, tuple[str, str, str, dict[str, str]], str | None, int]]] = {}
    for number, at in enumerate(placed):
        if rng.random() < 0.8:
            shopper = SHOPPERS[number] if number < len(SHOPPERS) else rng.choice(SHOPPERS)
            token: str | None = tokens[shopper[0]]
        else:
            shopper, token = (f"guest{number}@example.org", "Sam", f"Guest{number}", GUEST_ADDRESS), None
        declines = 1 if rng.random() < 0.15 else 0
        plans.setdefault(shopper[0], []).append((number, at, shopper, token, declines))
    stories: list[Story] = []
    saved: dict[str, str] = {}
    done = [0]

    def run(group: list[tuple[int, datetime, tuple[str, str, str, dict[str, str]], str | None, int]]) -> list[Story]:
        """One shopper's orders, oldest first (the first saves the card the later ones may use)."""
        from django.db import connection

        told = []
        try:
            for number, at, (email, first, last, address), token, declines in group:
                story_rng = random.Random(args.seed * 1000 + number)
                story = Story(placed_at=at)
                story.mark(at)
                order = _checkout(
                    api,
                    story_rng,
                    email=email,
                    names=(first, last),
                    address=address,
                    token=token,
                    saved=saved,
                    regions=regions,
                    variants=variants,
                    declines=declines,
                    story=story,
                )
                story.order_id = order["id"]
                _staff_story(story_rng, order=order, story=story, staff_id=staff_id, now=now)
                told.append(story)
                done[0] += 1
                print(f"\r  orders {done[0]}/{args.orders}", end="", flush=True)
        finally:
            connection.close()
        return told

    with ThreadPoolExecutor(max_workers=3) as pool:  # the server, the worker and the stand-in share 2 cores
        for told in pool.map(run, plans.values()):
            stories += told
    print(flush=True)
    declined = sum(plan[4] for group in plans.values() for plan in group)
    for _ in range(args.abandoned):
        email, first, last, address = rng.choice(SHOPPERS)
        story = Story(placed_at=now - timedelta(days=args.days) * rng.random(), order_id="abandon")
        story.mark(story.placed_at)
        _checkout(
            api,
            rng,
            email=email,
            names=(first, last),
            address=address,
            token=tokens[email],
            saved=saved,
            regions=regions,
            variants=variants,
            declines=0,
            story=story,
        )
        story.order_id = None
        stories.append(story)

    _drain_webhooks()
    shoppers = User.objects.filter(email__in=[email for email, *_ in SHOPPERS]).values_list("pk", flat=True)
    timeline.users_joined_at(user_ids=shoppers, at=now - timedelta(days=args.days + 3))  # before their first order
    moved = timeline.timeline_apply(stories)
    print(
        f"  {len(SHOPPERS)} shoppers, {args.orders} orders ({declined} first declined, {len(saved)} saved cards), "
        f"{args.abandoned} abandoned carts over {args.days} days; {moved} rows dated "
        f"({time.monotonic() - started:.1f} s)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    raise SystemExit(main())
