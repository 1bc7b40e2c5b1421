"""Forms of the staff confirmation pages (backoffice/views.py).

Staff type amounts in major units, as printed on the order page ("12.00", "¥1,200",
"1.250"); ``parse_amount`` turns that text into integer minor units exactly (string
arithmetic, no floats) and refuses more decimals than the currency has. Limits
(capturable, refundable) are the services' to check: the form only checks the shape.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms

from common.money import CURRENCY_SYMBOLS, currency_exponent

_AMOUNT = re.compile(r"^(?P<units>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<minor>\d*))?$")
MAX_AMOUNT = 99_999_999_999  # minor units; far above any order


def amount_input(amount: int, currency: str) -> str:
    """Minor units as the text a staff member would type: 1200 -> "12.00" (usd), "1200" (jpy), "1.200" (kwd)."""
    exponent = currency_exponent(currency)
    if not exponent:
        return str(amount)
    units, minor = divmod(amount, 10**exponent)
    return f"{units}.{str(minor).rjust(exponent, '0')}"


def parse_amount(text: str, currency: str) -> int:
    """Major-unit text -> integer minor units of ``currency``; ``ValueError`` with a message if malformed."""
    cleaned = (text or "").strip()
    symbol = CURRENCY_SYMBOLS.get(currency.lower(), "").strip()
    for prefix in filter(None, (symbol, currency.upper(), currency.lower())):
        if cleaned.startswith(prefix):
            cleaned = cleaned[len(prefix) :].strip()
    if cleaned.upper().endswith(currency.upper()):
        cleaned = cleaned[: -len(currency)].strip()
    match = _AMOUNT.match(cleaned)
    exponent = currency_exponent(currency)
    if match is None:
        raise ValueError(f"Enter an amount like {amount_input(1200 * 10 ** max(exponent - 2, 0), currency)}.")
    minor_text = match.group("minor") or ""
    if len(minor_text) > exponent:
        places = "no decimals" if exponent == 0 else f"at most {exponent} decimals"
        raise ValueError(f"{currency.upper()} amounts have {places}.")
    units = int(match.group("units").replace(",", ""))
    minor = int(minor_text.ljust(exponent, "0")) if exponent else 0
    amount = units * 10**exponent + minor
    if amount <= 0:
        raise ValueError("The amount must be greater than zero.")
    if amount > MAX_AMOUNT:
        raise ValueError("The amount is too large.")
    return amount


class _OrderActionForm(forms.Form):
    # The ledger version the staff member saw when the page was rendered: a double-submitted
    # form carries the same version, so the services derive the same idempotency key.
    ledger_version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)

    def __init__(self, *args: Any, currency: str, **kwargs: Any) -> None:
        self.currency = currency
        super().__init__(*args, **kwargs)


class _AmountForm(_OrderActionForm):
    amount = forms.CharField(
        max_length=32, widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"})
    )

    def clean_amount(self) -> int:
        try:
            return parse_amount(self.cleaned_data["amount"], self.currency)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class CaptureForm(_AmountForm):
    reason = forms.CharField(
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Optional note for the timeline.",
    )


class RefundForm(_AmountForm):
    REASONS = [
        ("requested_by_customer", "Requested by the customer"),
        ("duplicate", "Duplicate payment"),
        ("fraudulent", "Fraudulent"),
        ("other", "Other (explain below)"),
    ]
    reason = forms.ChoiceField(choices=REASONS, initial="requested_by_customer")
    note = forms.CharField(max_length=400, required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("reason") == "other" and not (data.get("note") or "").strip():
            self.add_error("note", "Explain the reason for the refund.")
        return data

    def stripe_reason(self) -> str | None:
        """The reason Stripe is told (``other`` is ours only: Stripe gets none)."""
        reason = self.cleaned_data["reason"]
        return reason if reason != "other" else None

    def reason_text(self) -> str:
        reason, note = self.cleaned_data["reason"], (self.cleaned_data.get("note") or "").strip()
        return f"{reason}: {note}" if note else reason


class CancelForm(_OrderActionForm):
    reason = forms.CharField(
        max_length=500,
        required=True,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why the authorization is released.",
    )


class FulfilForm(_OrderActionForm):
    reason = forms.CharField(max_length=500, required=False, label="Note", widget=forms.Textarea(attrs={"rows": 2}))


class ShipForm(FulfilForm):
    carrier = forms.CharField(max_length=100)
    tracking_number = forms.CharField(max_length=100)
    tracking_url = forms.URLField(
        max_length=500,
        required=False,
        assume_scheme="https",
        label="Tracking link",
        help_text="Optional: the carrier's tracking page, linked in the shipped email and on the shopper's order page.",
    )
    field_order = ["carrier", "tracking_number", "tracking_url", "reason", "ledger_version"]


class DeliverForm(FulfilForm):
    pass
