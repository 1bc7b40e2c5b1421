"""The benchmark's checkout driver: the 7-step checkout over HTTP, and the hot-SKU race.
Dev tooling only. The steps and their bodies are devtools/bench_sql.py's (one definition).

Each step is a ``POST`` with an ``Idempotency-Key`` of its own. The card token a browser
would get from Stripe.js is fetched from the stand-in just before the payment session step;
that call is not a step and is not timed.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from devtools.bench_http import Request, percentile, post_form, post_json, send
from devtools.bench_sql import STEPS, absorb, step_request, token_form

SOLD_OUT = b"insufficient_inventory"


@dataclass
class CheckoutResult:
    clients: int
    completed: int = 0
    failed: int = 0
    sold_out: int = 0  # a buyer refused with 409 insufficient_inventory (the hot-SKU run)
    seconds: float = 0.0
    steps: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    first_error: str = ""
    cpu_seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "completed": self.completed,
            "failed": self.failed,
            "sold_out": self.sold_out,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.per_second, 2),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "cpu_per_checkout": round(self.cpu_seconds / self.completed, 4) if self.completed else None,
            "steps": {
                name: {"p50_ms": _ms(percentile(v, 50)), "p95_ms": _ms(percentile(v, 95)), "n": len(v)}
                for name, v in self.steps.items()
            },
            "first_error": self.first_error,
        }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


async def one_checkout(*, port: int, stripe_port: int, fx: dict[str, str], result: CheckoutResult) -> None:
    """The 7 steps for one buyer; stops at the first refusal (recorded in ``result``)."""
    state: dict[str, str] = {}
    for step in STEPS:
        if step == "payment session":
            status, body = await send(stripe_port, post_form("token", "/v1/tokens", token_form()))
            if status != 200:
                result.failed += 1
                result.first_error = result.first_error or f"card token: HTTP {status} {body[:200]!r}"
                return
            state["token"] = json.loads(body)["id"]
        path, payload = step_request(step, fx=fx, state=state)
        request: Request = post_json(step, path, payload, key=str(uuid.uuid4()))
        t0 = time.perf_counter()
        try:
            status, body = await send(port, request)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            result.failed += 1
            result.first_error = result.first_error or f"{step}: {type(exc).__name__} {exc}"
            return
        elapsed = time.perf_counter() - t0
        if status not in (200, 201):
            if status == 409 and SOLD_OUT in body:
                result.sold_out += 1
            else:
                result.failed += 1
                result.first_error = result.first_error or f"{step}: HTTP {status} {body[:300]!r}"
            return
        result.steps[step].append(elapsed)
        absorb(step, json.loads(body), state)
    result.completed += 1


async def run_checkouts(*, port: int, stripe_port: int, fx: dict[str, str], clients: int, total: int) -> CheckoutResult:
    """``total`` checkouts shared by ``clients`` concurrent buyers."""
    result = CheckoutResult(clients=clients)
    started_count = 0

    async def buyer() -> None:
        nonlocal started_count
        while started_count < total:
            started_count += 1
            await one_checkout(port=port, stripe_port=stripe_port, fx=fx, result=result)

    started = time.perf_counter()
    await asyncio.gather(*(buyer() for _ in range(clients)))
    result.seconds = time.perf_counter() - started
    return result


async def run_hot_sku(*, port: int, stripe_port: int, fx: dict[str, str], buyers: int) -> CheckoutResult:
    """``buyers`` buyers at once, each one checkout of one unit of the hot variant."""
    hot = {**fx, "variant_id": fx["hot_variant_id"]}
    result = CheckoutResult(clients=buyers)
    started = time.perf_counter()
    await asyncio.gather(
        *(one_checkout(port=port, stripe_port=stripe_port, fx=hot, result=result) for _ in range(buyers))
    )
    result.seconds = time.perf_counter() - started
    return result
