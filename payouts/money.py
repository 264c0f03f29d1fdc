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

# The currencies Stripe supports (https://docs.stripe.com/currencies), which include every
# currency a connected account's bank payout can be in (https://docs.stripe.com/payouts and
# https://docs.stripe.com/connect/cross-border-payouts): a payout in anything else is a typo.
# fmt: off
PAYOUT_CURRENCIES = frozenset({
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD",
    "BDT", "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN",
    "BZD", "CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CVE", "CZK", "DJF", "DKK",
    "DOP", "DZD", "EGP", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD",
    "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "ISK", "JMD",
    "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP",
    "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB",
    "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR",
    "SBD", "SCR", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "STD", "SZL", "THB", "TJS",
    "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VND",
    "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW",
})
# fmt: on

CENT = Decimal("0.01")


def normalize_currency(currency):
    """ " eur" -> "EUR": codes are accepted in any case and stored upper case."""
    return (currency or "").strip().upper()


def currency_problem(currency):
    """Why Stripe could not pay out in `currency`, or "" (any case is fine)."""
    code = normalize_currency(currency)
    if code in PAYOUT_CURRENCIES:
        return ""
    if not code:
        return "A payout needs a currency (an ISO 4217 code such as EUR)"
    return f"{currency!r} is not a currency Stripe pays out in (an ISO 4217 code such as EUR)"


def payout_terms_problem(amount, currency):
    """Why a payout of `amount` `currency` cannot be paid as it stands, or "": the currency
    must be one Stripe pays out in, the amount more than zero and exact in that currency."""
    problem = currency_problem(currency)
    if problem:
        return problem
    if amount is None:
        return "A payout needs an amount"
    try:
        to_minor_units(amount, currency)
    except (ValueError, ArithmeticError) as exc:
        return str(exc)
    if Decimal(amount) <= 0:
        return f"A payout must be more than zero, not {amount}"
    return ""


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
