"""Drive the whole checkout over HTTP against a running server and its (local)stripe. Dev tooling.

    .venv/bin/python -m devtools.checkout_flow [--base-url http://127.0.0.1:8000] [--card 4242424242424242] [--region usd]

regions -> products -> cart -> line item -> email and addresses -> shipping option ->
payment session (the card is tokenized at Stripe with the publishable key, as Stripe.js
does in the browser) -> 3-D Secure authentication when asked -> complete -> order.

It is a client of the public API only (it reads no database and calls no service), so it
works against any deployment. The publishable key and Stripe's address are read from
the storefront page (``#storefront-config``) unless given. Each step is printed with its
duration; any failure (an unexpected status, a declined card, an unreachable server)
ends the command with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any, TextIO

from common.money import format_money

REAL_STRIPE_API = "https://api.stripe.com"
# Real Stripe refuses raw card numbers from a server; its test tokens stand in for them.
REAL_STRIPE_TEST_TOKENS = {
    "4242424242424242": "tok_visa",
    "4000000000000341": "tok_chargeCustomerFail",
    "4000002760003184": "tok_threeDSecure2Required",
}
ADDRESSES = {  # one plausible address per country the demo regions use
    "US": ("1 Loom Street", "Springfield", "12345"),
    "JP": ("1-2-3 Nishiki", "Kyoto", "604-8111"),
    "KW": ("Block 3, Street 12", "Kuwait City", "13001"),
    "DE": ("Stoffstrasse 5", "Berlin", "10115"),
}
DEFAULT_ADDRESS = ("1 Main Street", "Capital City", "10000")


class FlowError(Exception):
    """A step failed; the message says which and why."""


class HttpClient:
    def __init__(self, *, timeout: float) -> None:
        self.timeout = timeout

    def request(
        self,
        method: str,
        url: str,
        *,
        json_body: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        data = None
        all_headers = {"Accept": "application/json", **(headers or {})}
        if json_body is not None:
            data = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(url, data=data, method=method, headers=all_headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - operator-given URL
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FlowError(f"{method} {url}: cannot connect ({reason})") from None

    def json(self, method: str, url: str, *, expect: tuple[int, ...] = (200,), **kwargs: Any) -> dict[str, Any]:
        status, body = self.request(method, url, **kwargs)
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            payload = None
        if status not in expect:
            raise FlowError(f"{method} {url} answered {status}: {_describe(payload, body)}")
        if not isinstance(payload, dict):
            raise FlowError(f"{method} {url} answered {status} without a JSON object")
        return payload


def _describe(payload: Any, body: bytes) -> str:
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error = payload["error"]
        param = f" (param {error['param']})" if error.get("param") else ""
        return f"{error.get('code')}: {error.get('message')}{param}"
    return body[:200].decode(errors="replace")


def _money(amount: int, currency: str) -> str:
    return f"{format_money(amount, currency)} ({amount} {currency})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.checkout_flow",
        description="Run a full checkout against a running server over HTTP and print each step; non-zero exit on failure.",
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="The shop (default %(default)s).")
    parser.add_argument("--card", default="4242424242424242", help="Test card number (default %(default)s).")
    parser.add_argument("--region", default="usd", help="Region: currency code, region id or name (default usd).")
    parser.add_argument("--quantity", type=int, default=1)
    parser.add_argument("--email", default="checkout-flow@example.com")
    parser.add_argument(
        "--stripe-base", default=None, help="Stripe API base; default: derived from the page's Stripe.js URL."
    )
    parser.add_argument("--publishable-key", default=None, help="Default: the storefront page's key.")
    parser.add_argument("--timeout", type=float, default=30.0, help="Per request, in seconds.")
    return parser


class Flow:
    """One run of the flow; prints each step to ``out``."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def run(self, options: dict[str, Any]) -> int:
        base = options["base_url"].rstrip("/")
        self.http = HttpClient(timeout=options["timeout"])
        self.steps: list[tuple[str, float]] = []
        started = time.monotonic()
        try:
            order = self._run(base, options)
        except FlowError as exc:
            self.write(f"FAILED after {self._elapsed(started)}: checkout flow failed: {exc}")
            return 1
        self.write("")
        self.write(json.dumps(order, indent=2, sort_keys=True))
        self.write(
            f"OK order {order['id']} #{order['display_id']} total {_money(order['total'], order['currency_code'])} "
            f"payment {order['payment_status']} in {self._elapsed(started)}"
        )
        return 0

    # --- plumbing ---------------------------------------------------------------------

    @staticmethod
    def _elapsed(since: float) -> str:
        return f"{(time.monotonic() - since) * 1000:.0f} ms"

    def _step(self, name: str, action: Callable[[], Any], describe: Callable[[Any], str]) -> Any:
        started = time.monotonic()
        try:
            result = action()
        except FlowError as exc:
            self.write(f"  x {name:<22} {self._elapsed(started):>8}  {exc}")
            raise FlowError(f"{name}: {exc}") from None
        self.steps.append((name, time.monotonic() - started))
        self.write(f"  + {name:<22} {self._elapsed(started):>8}  {describe(result)}")
        return result

    def _post(self, url: str, body: dict[str, Any], expect: tuple[int, ...] = (200,)) -> dict[str, Any]:
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        return self.http.json("POST", url, json_body=body, expect=expect, headers=headers)

    # --- the flow ---------------------------------------------------------------------

    def _run(self, base: str, options: dict[str, Any]) -> dict[str, Any]:
        api = f"{base}/store"
        self.write(f"Checkout flow against {base} with card {options['card']}")
        stripe_base, publishable_key = self._step(
            "stripe config", lambda: self._stripe_config(base, options), lambda r: f"{r[0]} key {r[1][:12]}…"
        )
        region = self._step(
            "regions", lambda: self._region(api, options["region"]), lambda r: f"{r['name']} ({r['currency_code']})"
        )
        variant = self._step(
            "products",
            lambda: self._variant(api, region["id"]),
            lambda v: f"{v['sku']} at {_money(v['price']['amount'], v['price']['currency_code'])}",
        )
        cart = self._step(
            "create cart",
            lambda: self._post(f"{api}/carts", {"region_id": region["id"]}, expect=(201,))["cart"],
            lambda c: c["id"],
        )
        cart_url = f"{api}/carts/{cart['id']}"
        cart = self._step(
            "add line item",
            lambda: self._post(
                f"{cart_url}/line-items", {"variant_id": variant["id"], "quantity": options["quantity"]}
            )["cart"],
            lambda c: f"{len(c['items'])} line(s), subtotal {_money(c['subtotal'], c['currency_code'])}",
        )
        address = self._address(region)
        cart = self._step(
            "email and addresses",
            lambda: self._post(
                cart_url, {"email": options["email"], "shipping_address": address, "billing_address": address}
            )["cart"],
            lambda c: f"{c['email']}, ships to {c['shipping_address']['country_code']}",
        )
        option = self._step(
            "shipping options",
            lambda: self._shipping_option(api, cart["id"]),
            lambda o: f"{o['name']} {_money(o['amount'], cart['currency_code'])}",
        )
        cart = self._step(
            "set shipping method",
            lambda: self._post(f"{cart_url}/shipping-methods", {"option_id": option["id"]})["cart"],
            lambda c: f"total {_money(c['total'], c['currency_code'])}",
        )
        token = self._step(
            "tokenize card",
            lambda: self._card_token(stripe_base, publishable_key, options["card"]),
            lambda t: t,
        )
        session = self._step(
            "payment session",
            lambda: self._post(
                f"{cart_url}/payment-sessions", {"provider_id": "stripe", "card_token": token}, expect=(200, 201)
            )["payment_session"],
            lambda s: f"{s['status']} {s['data']['payment_intent_id']} {_money(s['amount'], s['currency_code'])}",
        )
        if session["amount"] != cart["total"]:
            raise FlowError(f"payment session amount {session['amount']} != cart total {cart['total']}")
        if session["status"] == "requires_action":
            self._step(
                "3-D Secure",
                lambda: self._authenticate(stripe_base, publishable_key, session),
                lambda intent: f"authenticated, intent {intent.get('status')}",
            )
        elif session["status"] not in ("authorized", "succeeded"):
            raise FlowError(f"payment session ended in status {session['status']!r}")
        order = self._step(
            "complete",
            lambda: self._post(
                f"{cart_url}/complete", {"payment_intent_id": session["data"]["payment_intent_id"]}, expect=(200, 201)
            )["order"],
            lambda o: f"{o['id']} #{o['display_id']}",
        )
        order = self._step(
            "get order",
            lambda: self.http.json("GET", f"{api}/orders/{order['id']}")["order"],
            lambda o: f"{o['status']}, payment {o['payment_status']}, total {_money(o['total'], o['currency_code'])}",
        )
        if order["total"] != cart["total"]:
            raise FlowError(f"order total {order['total']} != cart total {cart['total']}")
        return order

    def _stripe_config(self, base: str, options: dict[str, Any]) -> tuple[str, str]:
        stripe_base, key = options["stripe_base"], options["publishable_key"]
        if not (stripe_base and key):
            status, body = self.http.request("GET", f"{base}/", headers={"Accept": "text/html"})
            match = re.search(rb'<script id="storefront-config" type="application/json">(.*?)</script>', body, re.S)
            if status != 200 or not match:
                raise FlowError("the storefront page has no #storefront-config: pass --stripe-base, --publishable-key")
            config = json.loads(match.group(1))
            key = key or config["stripe_publishable_key"]
            js_url = config["stripe_js_url"]
            # localstripe serves its fake Stripe.js at <base>/js.stripe.com/v3/; real Stripe.js means real Stripe.
            derived = js_url.removesuffix("/js.stripe.com/v3/") if js_url.endswith("/js.stripe.com/v3/") else ""
            stripe_base = stripe_base or (derived if derived.startswith("http") else REAL_STRIPE_API)
        return stripe_base.rstrip("/"), key

    def _region(self, api: str, wanted: str) -> dict[str, Any]:
        regions = self.http.json("GET", f"{api}/regions")["regions"]
        for region in regions:
            if wanted.lower() in (region["id"].lower(), region["currency_code"], region["name"].lower()):
                return region
        names = ", ".join(f"{r['name']} ({r['currency_code']})" for r in regions) or "none"
        raise FlowError(f"no region matches {wanted!r}; regions: {names}")

    def _variant(self, api: str, region_id: str) -> dict[str, Any]:
        url: str | None = f"{api}/products?region_id={urllib.parse.quote(region_id)}&limit=100"
        while url:
            page = self.http.json("GET", url)
            for product in page["products"]:
                for variant in product["variants"]:
                    if variant["price"] and variant["in_stock"]:
                        return variant
            url = page.get("next")
        raise FlowError("no priced, in-stock variant in this region")

    @staticmethod
    def _address(region: dict[str, Any]) -> dict[str, str]:
        country = region["countries"][0]
        line, city, postal_code = ADDRESSES.get(country, DEFAULT_ADDRESS)
        return {
            "first_name": "Flow",
            "last_name": "Tester",
            "address_1": line,
            "city": city,
            "postal_code": postal_code,
            "country_code": country,
        }

    def _shipping_option(self, api: str, cart_id: str) -> dict[str, Any]:
        options = self.http.json("GET", f"{api}/shipping-options?cart_id={urllib.parse.quote(cart_id)}")
        if not options["shipping_options"]:
            raise FlowError("no shipping option for this cart")
        return options["shipping_options"][0]

    def _card_token(self, stripe_base: str, publishable_key: str, number: str) -> str:
        number = re.sub(r"\D", "", number)
        if stripe_base == REAL_STRIPE_API:
            if number not in REAL_STRIPE_TEST_TOKENS:
                raise FlowError(f"against real Stripe use one of the test cards {sorted(REAL_STRIPE_TEST_TOKENS)}")
            return REAL_STRIPE_TEST_TOKENS[number]
        # What Stripe.js's createToken sends: the card and the publishable key, no secret key.
        form = {
            "card[number]": number,
            "card[exp_month]": "12",
            "card[exp_year]": str(time.gmtime().tm_year + 5),
            "card[cvc]": "123",
            "key": publishable_key,
        }
        token = self.http.json("POST", f"{stripe_base}/v1/tokens", form=form)
        if not str(token.get("id", "")).startswith("tok_"):
            raise FlowError("Stripe returned no token")
        return token["id"]

    def _authenticate(self, stripe_base: str, publishable_key: str, session: dict[str, Any]) -> dict[str, Any]:
        if stripe_base == REAL_STRIPE_API:
            raise FlowError("3-D Secure on real Stripe needs a browser; use the storefront page")
        intent_id = session["data"]["payment_intent_id"]
        # localstripe's stand-in for the bank's 3-D Secure page (what confirmCardPayment opens).
        intent = self.http.json(
            "POST",
            f"{stripe_base}/v1/payment_intents/{intent_id}/_authenticate",
            form={"client_secret": session["data"]["client_secret"], "success": "true", "key": publishable_key},
        )
        if intent.get("status") not in ("requires_capture", "succeeded"):
            raise FlowError(f"the payment is {intent.get('status')!r} after authentication")
        return intent


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    options = vars(_parser().parse_args(argv))
    return Flow(out or sys.stdout).run(options)


if __name__ == "__main__":
    raise SystemExit(main())
