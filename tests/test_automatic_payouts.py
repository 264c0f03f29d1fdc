"""process-automatic-payouts: scheduled payouts of the whole available balance, once per period."""

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
import responses
from django.core.management import call_command

from bookings.models import Creator
from cronlogs.models import Log
from cronlogs.runner import run_job
from payouts.automatic import process_automatic_payouts
from payouts.models import Payout
from tests.conftest import job_run

pytestmark = pytest.mark.django_db
Schedule = Creator.PayoutSchedule
Status = Payout.Status


@pytest.fixture
def scheduled_creator(make_creator, stripe_fake):
    """A creator on a payout schedule whose Stripe account holds `balance` (minor units)."""

    def make(schedule=Schedule.DAILY, balance=None, payouts_enabled=True, **fields):
        fields.setdefault("currency", "EUR")
        creator = make_creator(payout_schedule=schedule, **fields)
        stripe_fake.add_account(
            creator.stripe_account_id,
            balance={fields["currency"]: 50_000} if balance is None else balance,
            payouts_enabled=payouts_enabled,
        )
        return creator

    return make


def run(now, dry_run=False):
    work = job_run(now, dry_run=dry_run)
    process_automatic_payouts(work)
    return work.stats


def previous_payout(make_payout, creator, *, at, status=Status.PAID):
    return make_payout(creator=creator, automatic=True, status=status, approved_at=at)


def test_it_pays_out_the_whole_available_balance_of_a_due_creator(
    scheduled_creator, stripe_fake, now
):
    creator = scheduled_creator(balance={"EUR": 12_345, "USD": 999})

    stats = run(now)

    # It should pay out the whole EUR balance, keyed by creator, day and currency; the
    # 9.99 USD is below the USD minimum (PAYOUT_MINIMUMS).
    payout = Payout.objects.get()
    assert payout.automatic and payout.status == Status.PROCESSING
    assert (payout.amount, payout.currency) == (Decimal("123.45"), "EUR")
    assert payout.idempotency_key == f"callastar-auto-{creator.pk}-{now.date().isoformat()}-EUR"
    assert payout.stripe_payout_id and payout.approved_at == now
    assert stripe_fake.creations[0][1] == payout.idempotency_key
    assert stripe_fake.creations[0][2]["amount"] == "12345"
    assert stripe_fake.balance(creator.stripe_account_id, "EUR") == 0

    # It should report the run as the seed's logs did, amounts with 2 decimals.
    assert stats["totalCreators"] == 1 and stats["itemsProcessed"] == 1
    assert stats["skipped"] == 1 and stats["failed"] == 0
    assert stats["skippedCreators"] == [
        {
            "creatorId": creator.pk,
            "currency": "USD",
            "reason": "Available balance 9.99 USD is below the payout minimum 10.00 USD",
        }
    ]
    assert stats["totalAmount"] == "123.45"
    assert stats["totalAmountByCurrency"] == {"EUR": "123.45"}
    assert Log.objects.get(type="PAYOUT_SUCCESS").context["automatic"] is True


def test_it_pays_a_daily_creator_after_24_hours_and_not_before(
    scheduled_creator, make_payout, stripe_fake, now
):
    recent = scheduled_creator(schedule=Schedule.DAILY)
    previous_payout(make_payout, recent, at=now - timedelta(hours=23))
    due = scheduled_creator(schedule=Schedule.DAILY)
    previous_payout(make_payout, due, at=now - timedelta(hours=24))

    stats = run(now)

    # It should pay only the creator whose last automatic payout is a day old.
    assert [c[0] for c in stripe_fake.creations] == [due.stripe_account_id]
    assert stats["totalCreators"] == 1
    assert not Payout.objects.filter(creator=recent, status=Status.PROCESSING).exists()


def test_it_pays_a_weekly_creator_after_7_days_and_not_before(
    scheduled_creator, make_payout, stripe_fake, now
):
    recent = scheduled_creator(schedule=Schedule.WEEKLY)
    previous_payout(make_payout, recent, at=now - timedelta(days=6))
    due = scheduled_creator(schedule=Schedule.WEEKLY)
    previous_payout(make_payout, due, at=now - timedelta(days=7))

    run(now)

    # It should pay the week-old one only, with a key naming the ISO week.
    assert [c[0] for c in stripe_fake.creations] == [due.stripe_account_id]
    year, week, _ = now.isocalendar()
    assert stripe_fake.creations[0][1] == f"callastar-auto-{due.pk}-{year}-W{week:02d}-EUR"


def test_it_ignores_manual_blocked_and_unonboarded_creators(
    scheduled_creator, make_creator, stripe_fake, now
):
    scheduled_creator(schedule=Schedule.MANUAL)
    scheduled_creator(is_payout_blocked=True)
    make_creator(payout_schedule=Schedule.DAILY, is_stripe_onboarded=False)

    stats = run(now)

    # It should not even ask Stripe about them.
    assert stats["totalCreators"] == 0 and stripe_fake.requests == []


def test_it_skips_creators_with_nothing_payable_and_says_why(scheduled_creator, stripe_fake, now):
    below = scheduled_creator(balance={"EUR": 999}, payout_minimum=Decimal("10.00"))
    other_currency = scheduled_creator(balance={"USD": 50_000})
    disabled = scheduled_creator(payouts_enabled=False)
    paid = scheduled_creator(balance={"EUR": 1_000}, payout_minimum=Decimal("10.00"))

    stats = run(now)

    # It should pay the creator at the minimum and the USD of the EUR creator, and give
    # each skip its reason.
    assert sorted(c[0] for c in stripe_fake.creations) == sorted(
        [paid.stripe_account_id, other_currency.stripe_account_id]
    )
    reasons = {
        (entry["creatorId"], entry["currency"]): entry["reason"]
        for entry in stats["skippedCreators"]
    }
    assert reasons == {
        (below.pk, "EUR"): "Available balance 9.99 EUR is below the payout minimum 10.00 EUR",
        (other_currency.pk, "EUR"): "No available balance in EUR",
        (disabled.pk, "EUR"): "Stripe reports payouts are not enabled for this account",
    }
    assert stats["totalCreators"] == 4 and stats["skipped"] == 3
    assert stats["itemsProcessed"] == 2
    assert stats["totalAmountByCurrency"] == {"EUR": "10.00", "USD": "500.00"}
    assert Payout.objects.count() == 2


def test_it_pays_once_when_run_twice_the_same_day(scheduled_creator, stripe_fake, now):
    scheduled_creator()

    run(now)
    stripe_fake.accounts[next(iter(stripe_fake.accounts))]["balance"]["eur"] = 20_000
    second = run(now + timedelta(hours=3))

    # It should find nothing due the second time: one payout row, one Stripe creation.
    assert Payout.objects.count() == 1 and len(stripe_fake.creations) == 1
    assert second["totalCreators"] == 0


def test_it_does_not_retry_a_failed_period_but_pays_the_next_one(
    scheduled_creator, stripe_fake, now
):
    creator = scheduled_creator()
    stripe_fake.decline_next_payout("Payouts are paused for this account.", code="payouts_paused")
    # Noon UTC: two hours later is still the same daily period, whenever the suite runs.
    now = now.replace(hour=12)

    first = run(now)
    second = run(now + timedelta(hours=2))

    # It should fail the payout with Stripe's message, and not try again that same day.
    failed = Payout.objects.get()
    assert failed.status == Status.FAILED
    assert failed.failure_reason == "Payouts are paused for this account."
    assert first["failed"] == 1 and first["errors"][0]["payoutId"] == failed.pk
    # ...and say so: declined, and when the next attempt comes.
    assert second["skipped"] == 1
    reason = second["skippedCreators"][0]["reason"]
    assert reason.startswith(f"The {now.date().isoformat()} payout #{failed.pk} of 500.00 EUR")
    assert "was declined (Payouts are paused for this account.)" in reason
    tomorrow = (now + timedelta(days=1)).date().isoformat()
    assert reason.endswith(f"the next attempt is in the next period, from {tomorrow} UTC")

    # The next day is a new period.
    third = run(now + timedelta(days=1))
    assert third["itemsProcessed"] == 1 and len(stripe_fake.creations) == 1
    assert Payout.objects.filter(creator=creator, status=Status.PROCESSING).count() == 1


def test_it_pays_a_zero_decimal_currency_exactly(scheduled_creator, stripe_fake, now):
    scheduled_creator(currency="JPY", balance={"JPY": 5_000}, payout_minimum=Decimal("1000"))

    stats = run(now)

    # It should send 5000 yen as 5000, not 500000.
    assert Payout.objects.get().amount == Decimal("5000.00")
    assert stripe_fake.creations[0][2] == {
        "amount": "5000",
        "currency": "jpy",
        "metadata[payoutId]": str(Payout.objects.get().pk),
        "metadata[creatorId]": str(Payout.objects.get().creator_id),
    }
    assert stats["totalAmountByCurrency"] == {"JPY": "5000.00"}


def test_it_fails_the_run_naming_the_missing_key(scheduled_creator, settings):
    scheduled_creator()
    settings.STRIPE_SECRET_KEY = ""

    result = run_job("process-automatic-payouts")

    assert result.failed and "STRIPE_SECRET_KEY" in result.error
    assert not Payout.objects.exists()


def test_it_dry_runs_without_a_key_listing_due_creators(make_creator, settings, now):
    settings.STRIPE_SECRET_KEY = ""
    creator = make_creator(payout_schedule=Schedule.WEEKLY)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        result = run_job("process-automatic-payouts", dry_run=True)
        assert len(mock.calls) == 0

    # It should list who is due, say the amount is unknown without Stripe, and write nothing.
    assert not result.failed
    assert result.stats["wouldPay"] == [
        {"creatorId": creator.pk, "currency": "EUR", "amount": None}
    ]
    assert "STRIPE_SECRET_KEY" in result.stats["note"]
    assert not Payout.objects.exists() and not Log.objects.exists()


def test_it_dry_runs_with_a_key_reading_balances_only(scheduled_creator, stripe_fake, now):
    creator = scheduled_creator(balance={"EUR": 7_500})

    result = run_job("process-automatic-payouts", dry_run=True)

    # It should say how much would be paid, with GETs only and no payout row.
    assert result.stats["wouldPay"] == [
        {"creatorId": creator.pk, "currency": "EUR", "amount": "75.00"}
    ]
    assert result.stats["totalAmount"] == "75.00"
    assert {request[0] for request in stripe_fake.requests} == {"GET"}
    assert not Payout.objects.exists()


def test_the_command_runs_the_job_through_the_runner(scheduled_creator):
    scheduled_creator(balance={"EUR": 2_000})
    out = StringIO()

    call_command("process_automatic_payouts", "--json", stdout=out)

    # It should print the result and write one CRON_RUN row with the seed's stats.
    assert json.loads(out.getvalue())["stats"]["totalAmount"] == "20.00"
    row = Log.objects.get(type="CRON_RUN")
    assert row.context["cronType"] == "process-automatic-payouts"
    for key in ("totalCreators", "skipped", "failed", "totalAmount", "totalAmountByCurrency"):
        assert key in row.context
    assert row.context["itemsProcessed"] == 1


def test_it_fails_a_creator_whose_currency_stripe_does_not_pay_out_in(
    scheduled_creator, stripe_fake, now
):
    creator = scheduled_creator(currency="XXX", balance={"XXX": 50_000})

    stats = run(now)

    # It should count it failed with a clear reason, and create nothing on Stripe.
    assert stats["failed"] == 1 and stats["skipped"] == 0
    assert stats["errors"] == [
        {
            "creatorId": creator.pk,
            "payoutId": None,
            "error": "Creator's currency: 'XXX' is not a currency Stripe pays out in "
            "(an ISO 4217 code such as EUR)",
        }
    ]
    assert not Payout.objects.exists() and stripe_fake.payout_posts() == []
