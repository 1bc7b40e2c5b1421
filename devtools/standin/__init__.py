"""The Stripe stand-in: localstripe plus the promises Stripe keeps and localstripe does not.

Dev/test tooling only (never imported by product code). ``install(app)`` is called by
``devtools.localstripe_server.serve`` on localstripe's aiohttp app before it starts:

* ``devtools.standin.http``: ``Idempotency-Key`` replay, injected faults (before / after the
  request takes effect, connection resets, latency past the client timeout), a request log;
* ``devtools.standin.stripe``: Stripe-shaped objects and the events Stripe sends for them,
  webhook delivery switches (hold, drop, duplicate, delay, reorder), disputes, refund
  failures, authorization expiry, "dashboard" actions;
* ``devtools.standin.clock``: the stand-in's test clock (both use it).

Every switch is under ``/_control/...`` (no API key); docs/localstripe.md lists them.
"""

from __future__ import annotations

from aiohttp import web


def install(app: web.Application) -> None:
    from devtools.standin import clock, http, stripe

    clock.install(app)
    stripe.install(app)
    http.install(app)  # last: its middleware goes first, in front of localstripe's own
