"""The terms a payout can be paid on: a currency Stripe pays out in (any case), an amount
more than zero and exact in that currency."""

from decimal import Decimal

import pytest

from payouts.money import PAYOUT_CURRENCIES, currency_problem, payout_terms_problem


def test_it_accepts_stripe_payout_currencies_in_any_case_and_refuses_the_rest():
    # It should know the codes Stripe pays out in, whatever their case.
    for code in ("EUR", "eur", " usd ", "JPY", "BHD", "chf"):
        assert currency_problem(code) == "", code
    # It should refuse an empty code, ISO's "no currency" and anything made up.
    assert "needs a currency" in currency_problem("")
    for code in ("XXX", "EURO", "E", "ZZZ", "eu r"):
        assert "is not a currency Stripe pays out in" in currency_problem(code), code
    assert len(PAYOUT_CURRENCIES) > 100 and all(len(c) == 3 for c in PAYOUT_CURRENCIES)


@pytest.mark.parametrize(
    ("amount", "currency", "problem"),
    [
        (Decimal("0.00"), "EUR", "A payout must be more than zero, not 0.00"),
        (Decimal("-5"), "EUR", "A payout must be more than zero, not -5"),
        (Decimal("10.50"), "JPY", "10.50 JPY has more decimals than JPY allows"),
        (Decimal("10"), "XXX", "'XXX' is not a currency Stripe pays out in"),
        (Decimal("120.00"), "eur", ""),
    ],
)
def test_it_says_why_terms_cannot_be_paid(amount, currency, problem):
    found = payout_terms_problem(amount, currency)
    assert found.startswith(problem) if problem else found == ""
