"""A payout's terms are fixed once approved, and its lifecycle fields change only through
the lifecycle actions: the model layer refuses a save that says otherwise."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from payouts.models import Payout, PayoutLocked
from payouts.money import PAYOUT_CURRENCIES, currency_problem, payout_terms_problem

pytestmark = pytest.mark.django_db
Status = Payout.Status


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


@pytest.mark.parametrize("status", list(Status))
def test_it_still_creates_a_row_in_any_state_currency_case_or_amount(make_payout, status):
    # It should leave imports and fixtures free: no check on creation.
    payout = make_payout(status=status, currency="xxx", amount=Decimal("-1.00"))
    assert Payout.objects.filter(pk=payout.pk, currency="xxx", status=status).exists()


@pytest.mark.parametrize(
    "change",
    [
        {"amount": Decimal("50000.00")},
        {"currency": "USD"},
        {"currency": "eur"},
    ],
)
@pytest.mark.parametrize("status", [Status.APPROVED, Status.PAID, Status.PROCESSING])
def test_it_refuses_to_save_new_terms_once_approved(make_payout, status, change):
    payout = make_payout(status=status, amount=Decimal("120.00"), currency="EUR")
    for name, value in change.items():
        setattr(payout, name, value)

    # It should raise, naming what was fixed, and leave the row as it was.
    with pytest.raises(PayoutLocked, match=f"is {status}: its .* were fixed"):
        payout.save()
    stored = Payout.objects.get(pk=payout.pk)
    assert (stored.amount, stored.currency) == (Decimal("120.00"), "EUR")


def test_it_refuses_to_move_an_approved_payout_to_another_creator(make_payout, make_creator):
    payout = make_payout(status=Status.APPROVED)
    original = payout.creator_id
    payout.creator = make_creator()

    with pytest.raises(PayoutLocked, match="creator"):
        payout.save()
    # It should refuse through update_fields too, and through a form's full_clean.
    with pytest.raises(PayoutLocked):
        payout.save(update_fields=["creator"])
    with pytest.raises(ValidationError):
        payout.full_clean()
    assert Payout.objects.get(pk=payout.pk).creator_id == original


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", Status.APPROVED),
        ("stripe_payout_id", "po_planted"),
        ("flagged_at", None),
        ("approved_by", None),
        ("failure_reason", "hand-edited"),
    ],
)
def test_it_refuses_to_save_a_lifecycle_change(make_payout, make_user, field, value):
    # A flagged payout: claimed a day and more ago, never confirmed.
    payout = make_payout(
        status=Status.PROCESSING,
        approved_by=make_user(),
        claimed_at=timezone.now() - timedelta(hours=30),
        flagged_at=timezone.now(),
    )
    setattr(payout, field, value)

    # It should say that only the lifecycle actions move a payout on.
    with pytest.raises(PayoutLocked, match="change only through the lifecycle actions"):
        payout.save()
    stored = Payout.objects.get(pk=payout.pk)
    assert stored.status == Status.PROCESSING and stored.flagged_at is not None


def test_it_lets_a_request_change_its_terms_and_saves_unchanged_rows(make_payout, make_creator):
    requested = make_payout(status=Status.REQUESTED, amount=Decimal("10.00"))
    requested.amount, requested.currency = Decimal("12.00"), "USD"
    requested.creator = make_creator()
    requested.save()
    assert Payout.objects.get(pk=requested.pk).amount == Decimal("12.00")

    # It should let metadata and an unchanged save through on any payout.
    paid = make_payout(status=Status.PAID)
    paid.metadata = {"note": "checked"}
    paid.save()
    assert Payout.objects.get(pk=paid.pk).metadata == {"note": "checked"}


def test_its_clean_normalizes_the_currency_and_checks_the_amount(make_payout):
    payout = make_payout(status=Status.REQUESTED, currency="EUR")

    payout.currency = "usd"
    payout.full_clean()
    assert payout.currency == "USD"

    for currency, amount, field in [("XXX", "10.00", "currency"), ("", "10.00", "currency")]:
        payout.currency, payout.amount = currency, Decimal(amount)
        with pytest.raises(ValidationError) as caught:
            payout.full_clean()
        assert field in caught.value.message_dict
    payout.currency, payout.amount = "EUR", Decimal("0.00")
    with pytest.raises(ValidationError) as caught:
        payout.full_clean()
    assert caught.value.message_dict["amount"] == ["A payout must be more than zero, not 0.00"]
