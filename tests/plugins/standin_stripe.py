"""Test-side control of the stand-in's Stripe layer (devtools/standin/stripe.py): events and
their delivery, disputes, refund failures, expiry, dashboard actions.

A mixin of ``tests.plugins.localstripe.LocalStripe``; it uses ``self.request(...)``.
"""

from __future__ import annotations


class StripeControl:
    def _reset_stripe(self) -> None:
        """Called after every test: delivery back to normal, nothing held."""
