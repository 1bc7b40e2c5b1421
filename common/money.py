"""Money: integer minor units plus an ISO 4217 currency. No floats, anywhere.

``CURRENCY_EXPONENTS`` is the one table of minor-unit exponents. It lists every
currency Stripe treats as zero-decimal or three-decimal; any other currency
defaults to 2.

``charge_increment`` is the smallest step, in minor units, in which an amount can
be charged to a card: Stripe requires card amounts in the three-decimal currencies
to be multiples of 10 (e.g. 1.250 KWD, never 1.255 KWD). Catalog prices and
shipping amounts must be multiples of it, and tax is rounded to it, so every
total we compute is chargeable. See docs/money-and-tax.md.
"""

from __future__ import annotations

from dataclasses import dataclass

# Stripe's zero-decimal currencies (https://docs.stripe.com/currencies#zero-decimal).
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
# Stripe's three-decimal currencies.
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())

CURRENCY_EXPONENTS: dict[str, int] = {
    **{code: 0 for code in ZERO_DECIMAL},
    **{code: 3 for code in THREE_DECIMAL},
}
DEFAULT_EXPONENT = 2

CURRENCY_SYMBOLS: dict[str, str] = {
    "usd": "$",
    "eur": "€",
    "gbp": "£",
    "jpy": "¥",
    "kwd": "KD ",
}


# Card amounts in three-decimal currencies must be multiples of 10 minor units (Stripe).
CHARGE_INCREMENTS: dict[str, int] = {code: 10 for code in THREE_DECIMAL}


def currency_exponent(currency: str) -> int:
    return CURRENCY_EXPONENTS.get(currency.lower(), DEFAULT_EXPONENT)


def charge_increment(currency: str) -> int:
    """The step (in minor units) card amounts of this currency must be a multiple of: 10 or 1."""
    return CHARGE_INCREMENTS.get(currency.lower(), 1)


def is_chargeable(amount: int, currency: str) -> bool:
    """True when ``amount`` (minor units) can be charged to a card in ``currency``."""
    return amount % charge_increment(currency) == 0


def round_half_up_div(numerator: int, denominator: int) -> int:
    """Integer division rounded half up (away from zero for the .5 case), exact for ints."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    if numerator >= 0:
        return (2 * numerator + denominator) // (2 * denominator)
    return -((-2 * numerator + denominator) // (2 * denominator))


def round_half_up_to(numerator: int, denominator: int, *, increment: int = 1) -> int:
    """``numerator / denominator`` rounded half up to a multiple of ``increment`` (exact for ints)."""
    if increment <= 0:
        raise ValueError("increment must be positive")
    return round_half_up_div(numerator, denominator * increment) * increment


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError("Money.amount must be an int of minor units")
        if len(self.currency) != 3 or self.currency != self.currency.lower():
            raise ValueError("currency must be a lower-case ISO 4217 code")

    def _check(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot mix {self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: int) -> Money:
        if not isinstance(factor, int):
            raise TypeError("Money can only be multiplied by an int")
        return Money(self.amount * factor, self.currency)

    @property
    def exponent(self) -> int:
        return currency_exponent(self.currency)

    def format(self) -> str:
        return format_money(self.amount, self.currency)


def format_money(amount: int, currency: str) -> str:
    """Human formatting: ¥1,200 / $12.00 / KD 1.250 (never via floats)."""
    exponent = currency_exponent(currency)
    sign = "-" if amount < 0 else ""
    units, minor = divmod(abs(amount), 10**exponent) if exponent else (abs(amount), 0)
    text = f"{units:,}"
    if exponent:
        text += "." + str(minor).rjust(exponent, "0")
    symbol = CURRENCY_SYMBOLS.get(currency.lower())
    if symbol:
        return f"{sign}{symbol}{text}"
    return f"{sign}{text} {currency.upper()}"
