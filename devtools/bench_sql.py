"""Exact SQL counts of the benchmark's checkout, in-process. Dev tooling only.

    python /path/to/current/devtools/bench_sql.py --tree <app tree> --stripe-base <stand-in url> [--profile f]

``devtools.bench`` runs this file once per tree (its own tree and the baseline's temporary
worktree) in a subprocess whose working directory is that tree, with the same environment as
that tree's gunicorn (production settings, its database and Redis DB). The tree goes first on
``sys.path``, so the counts are those of that tree's code, counted the same way for both:
Django's test client sends each step (with an ``Idempotency-Key``, like the HTTP driver) and
``CaptureQueriesContext`` counts every query, idempotency records included. A first checkout
warms the process (content types, connection set-up); the second one is counted. It prints
one JSON object on stdout.

This module is also the one definition of the 7 checkout steps and their bodies, which the
HTTP driver (devtools/bench_checkout.py) imports: it must not import Django or the tree's code
at module level, and imports nothing else from devtools (the baseline tree has its own).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

STEPS = (
    "create cart",
    "add line",
    "shipping address",
    "billing address",
    "shipping method",
    "payment session",
    "complete",
)
PUBLISHABLE_KEY = "pk_test_bench"
CARD = "4242424242424242"
ADDRESS = {
    "first_name": "Bench",
    "last_name": "Buyer",
    "address_1": "1 Loom Street",
    "city": "Springfield",
    "postal_code": "12345",
    "country_code": "US",
}


def step_request(step: str, *, fx: dict[str, str], state: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """(path, JSON body) of one checkout step. ``fx``: region_id, variant_id, add_variant_id,
    option_id; ``state``: cart (after "create cart"), token (before "payment session"), pi."""
    cart = f"/store/carts/{state.get('cart', '')}"
    if step == "create cart":
        items = [{"variant_id": fx["variant_id"], "quantity": 1}]
        return "/store/carts", {"region_id": fx["region_id"], "email": "bench@example.com", "items": items}
    if step == "add line":
        return f"{cart}/line-items", {"variant_id": fx["add_variant_id"], "quantity": 1}
    if step == "shipping address":
        return cart, {"shipping_address": ADDRESS}
    if step == "billing address":
        return cart, {"billing_address": ADDRESS}
    if step == "shipping method":
        return f"{cart}/shipping-methods", {"option_id": fx["option_id"]}
    if step == "payment session":
        return f"{cart}/payment-sessions", {"provider_id": "stripe", "card_token": state["token"]}
    if step == "complete":
        return f"{cart}/complete", {"payment_intent_id": state["pi"]}
    raise ValueError(step)


def absorb(step: str, payload: dict[str, Any], state: dict[str, str]) -> None:
    """Keep what a later step needs from a step's answer."""
    if step == "create cart":
        state["cart"] = payload["cart"]["id"]
    elif step == "payment session":
        state["pi"] = payload["payment_session"]["data"]["payment_intent_id"]


def token_form() -> dict[str, str]:
    """What Stripe.js's createToken sends to the stand-in's POST /v1/tokens."""
    return {
        "card[number]": CARD,
        "card[exp_month]": "12",
        "card[exp_year]": str(time.gmtime().tm_year + 5),
        "card[cvc]": "123",
        "key": PUBLISHABLE_KEY,
    }


def card_token(stripe_base: str) -> str:
    data = urllib.parse.urlencode(token_form()).encode()
    request = urllib.request.Request(f"{stripe_base}/v1/tokens", data=data, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback stand-in
        return str(json.loads(response.read())["id"])


# --- In-process counting (runs inside the tree's Django) --------------------------------------


def _count(*, stripe_base: str, profile: Path | None) -> dict[str, Any]:
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")

    def get(path: str) -> dict[str, Any]:
        response = client.get(path, HTTP_ACCEPT="application/json")
        assert response.status_code == 200, (path, response.status_code, response.content[:300])
        return dict(response.json())

    def post(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = client.post(
            path, data=json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
        )
        return response.status_code, dict(response.json())

    fx = fixture_ids(get, post)

    def checkout(counts: dict[str, int] | None) -> str:
        state: dict[str, str] = {}
        for step in STEPS:
            if step == "payment session":
                state["token"] = card_token(stripe_base)
            path, body = step_request(step, fx=fx, state=state)
            with CaptureQueriesContext(connection) as queries:
                status, payload = post(path, body)
            if status not in (200, 201):
                raise SystemExit(f"{step}: HTTP {status} {payload}")
            absorb(step, payload, state)
            if counts is not None:
                counts[step] = len(queries.captured_queries)
        return state["cart"]

    checkout(None)  # warm-up
    counts: dict[str, int] = {}
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU time: waits on Stripe and PostgreSQL do not count
        profiler.enable()
        checkout(counts)
        profiler.disable()
        profiler.dump_stats(str(profile))
    else:
        checkout(counts)
    result: dict[str, Any] = {"steps": counts, "checkout": sum(counts.values())}

    # A cart read and a cart write (the add-line of the cart benchmark), on a fresh 1-line cart.
    state: dict[str, str] = {}
    path, body = step_request("create cart", fx=fx, state=state)
    absorb("create cart", post(path, body)[1], state)
    get(f"/store/carts/{state['cart']}")  # warm
    with CaptureQueriesContext(connection) as queries:
        get(f"/store/carts/{state['cart']}")
    result["cart_get"] = len(queries.captured_queries)
    path, body = step_request("add line", fx=fx, state=state)
    with CaptureQueriesContext(connection) as queries:
        status, payload = post(path, body)
    assert status == 200, payload
    result["cart_write"] = len(queries.captured_queries)
    return result


def fixture_ids(get: Any, post: Any) -> dict[str, str]:
    """The usd region, the variant bought (``BENCH-01``), the variant added (``BENCH-02``),
    the region's first shipping option. ``get(path) -> JSON`` and ``post(path, body) ->
    (status, JSON)`` over the test client or HTTP."""
    regions = get("/store/regions")["regions"]
    region_id = next(r["id"] for r in regions if r["currency_code"] == "usd")
    variants: dict[str, str] = {}
    path: str | None = f"/store/products?region_id={region_id}&limit=100"
    while path:
        page = get(path)
        for product in page["products"]:
            for variant in product["variants"]:
                variants[variant["sku"]] = variant["id"]
        path = urllib.parse.urlparse(page["next"])._replace(scheme="", netloc="").geturl() if page["next"] else None
    fx = {"region_id": region_id, "variant_id": variants["BENCH-01"], "add_variant_id": variants["BENCH-02"]}
    state: dict[str, str] = {}
    path, body = step_request("create cart", fx=fx, state=state)
    absorb("create cart", post(path, body)[1], state)
    options = get(f"/store/shipping-options?cart_id={state['cart']}")["shipping_options"]
    fx["option_id"] = options[0]["id"]
    if "BENCH-HOT" in variants:
        fx["hot_variant_id"] = variants["BENCH-HOT"]
    return fx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SQL counts of one checkout, in-process, against --tree's code.")
    parser.add_argument("--tree", type=Path, required=True)
    parser.add_argument("--stripe-base", required=True)
    parser.add_argument("--profile", type=Path, default=None, help="write the counted checkout's cProfile here")
    args = parser.parse_args(argv)
    tree = str(args.tree.resolve())
    sys.path[:] = [tree] + [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]
    os.chdir(tree)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    print(json.dumps(_count(stripe_base=args.stripe_base.rstrip("/"), profile=args.profile)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
