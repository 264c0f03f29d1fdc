"""Amounts as Decimal, and their exact conversion to and from Stripe's minor units.

Stripe takes amounts as integers in the currency's smallest unit: cents for EUR, but yen
for JPY and won for KRW. See https://docs.stripe.com/currencies#minor-units
"""

from decimal import ROUND_DOWN, Decimal

# https://docs.stripe.com/currencies#zero-decimal
# fmt: off
ZERO_DECIMAL_CURRENCIES = frozenset({
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA",
    "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
})
# fmt: on
# https://docs.stripe.com/currencies#three-decimal (the last digit must be 0 for Stripe).
THREE_DECIMAL_CURRENCIES = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])
# Two-decimal in the API, but Stripe only pays these out in whole units.
WHOLE_UNIT_PAYOUT_CURRENCIES = frozenset(["HUF", "ISK", "TWD"])

CENT = Decimal("0.01")


def minor_unit_exponent(currency):
    code = currency.upper()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def to_minor_units(amount, currency):
    """Decimal("12.34"), "EUR" -> 1234; Decimal("1000"), "JPY" -> 1000.

    Raises ValueError when the amount cannot be expressed exactly (e.g. 10.50 JPY):
    rounding money silently is never right.
    """
    amount = Decimal(amount)
    minor = amount.scaleb(minor_unit_exponent(currency))
    if minor != minor.to_integral_value():
        raise ValueError(
            f"{format_amount(amount)} {currency.upper()} has more decimals than "
            f"{currency.upper()} allows"
        )
    return int(minor)


def from_minor_units(minor, currency):
    """1234, "EUR" -> Decimal("12.34"); 1000, "JPY" -> Decimal("1000")."""
    return Decimal(int(minor)).scaleb(-minor_unit_exponent(currency))


def payable_amount(minor, currency):
    """The largest amount Stripe can pay out from `minor` units of balance, as a Decimal
    with at most 2 decimals (the Payout.amount column)."""
    amount = from_minor_units(minor, currency)
    step = Decimal(1) if currency.upper() in WHOLE_UNIT_PAYOUT_CURRENCIES else CENT
    return amount.quantize(step, rounding=ROUND_DOWN)


def format_amount(amount):
    """Two decimals for log context and messages, as the seed's logs show: "5420.50"."""
    return str(Decimal(amount).quantize(CENT))
