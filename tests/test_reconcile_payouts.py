"""reconcile-payouts: our payouts matched to each connected account's Stripe payouts."""

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from cronlogs.models import Log
from cronlogs.runner import run_job
from payouts.models import Payout
from payouts.reconciliation import reconcile_payouts
from tests.conftest import job_run

pytestmark = pytest.mark.django_db
Status = Payout.Status


@pytest.fixture
def account(make_creator, stripe_fake):
    def make(**fields):
        creator = make_creator(**fields)
        stripe_fake.add_account(creator.stripe_account_id)
        return creator

    return make


@pytest.fixture
def sent(make_payout, stripe_fake, now):
    """One of our payouts that reached Stripe: a Stripe payout carrying its id, with
    `stripe` overriding what Stripe holds (amount, currency, status)."""

    def make(creator, *, status=Status.PAID, amount=Decimal("10.00"), record=True, **stripe):
        claimed = stripe.pop("claimed_at", now - timedelta(days=1))
        payout = make_payout(
            creator=creator, status=status, amount=amount, claimed_at=claimed, **_extra(stripe)
        )
        stripe_id = stripe_fake.add_payout(
            creator.stripe_account_id,
            amount=stripe.pop("stripe_amount", int(amount * 100)),
            currency=stripe.pop("stripe_currency", "eur"),
            status=stripe.pop("stripe_status", "paid" if status == Status.PAID else "pending"),
            metadata={"payoutId": payout.pk, "creatorId": creator.pk},
            created=(claimed + timedelta(seconds=2)).timestamp(),
        )
        if record:
            Payout.objects.filter(pk=payout.pk).update(stripe_payout_id=stripe_id)
            payout.refresh_from_db()
        return payout, stripe_id

    return make


def _extra(stripe):
    return {key: stripe.pop(key) for key in ("flagged_at",) if key in stripe}


def reconcile(now, **kwargs):
    run = job_run(now, **kwargs)
    reconcile_payouts(run)
    return run


def critical_mismatches():
    return Log.objects.filter(type="PAYOUT_ERROR", level="CRITICAL")


def test_it_matches_200_payouts_on_20_accounts_and_reports_the_two_that_differ(
    account, sent, stripe_fake, now
):
    creators = [account() for _ in range(20)]
    payouts = [sent(creators[n % 20])[0] for n in range(199)]
    # One Stripe payout of a different amount than ours, and one we do not know at all.
    altered, altered_id = sent(creators[3], stripe_amount=1_000_000)
    stranger = stripe_fake.add_payout(
        creators[7].stripe_account_id,
        amount=4_200,
        metadata={"payoutId": "987654321", "creatorId": creators[7].pk},
        created=(now - timedelta(hours=3)).timestamp(),
    )
    # A payout made in the Stripe dashboard carries none of our metadata: not ours to judge.
    stripe_fake.add_payout(creators[0].stripe_account_id, amount=1, created=now.timestamp())

    run = reconcile(now)

    # It should match everything else and report exactly the two, at CRITICAL.
    stats = run.stats
    assert (stats["accountsChecked"], stats["stripePayoutsSeen"]) == (20, 202)
    assert (stats["matched"], stats["mismatches"]) == (199, 2)
    assert (stats["settled"], stats["resolved"]) == (0, 0)
    rows = {row.context["mismatch"]: row for row in critical_mismatches()}
    assert set(rows) == {"amount", "unknown"} and critical_mismatches().count() == 2
    assert rows["amount"].context["payoutId"] == altered.pk
    assert rows["amount"].context["stripePayoutId"] == altered_id
    assert rows["amount"].context["stripeAmount"] == "10000.00"
    assert "its amount is 10000.00 EUR, not 10.00 EUR" in rows["amount"].message
    assert rows["unknown"].context["stripePayoutId"] == stranger
    assert rows["unknown"].context["payoutId"] is None
    assert "987654321" in rows["unknown"].message
    # One list call per account (each fits in a page), no GET per payout.
    assert len(stripe_fake.payout_lists()) == 20 == len(stripe_fake.requests)
    # Nothing of ours changed.
    assert set(Payout.objects.values_list("status", flat=True)) == {Status.PAID}
    assert len(payouts) == 199


def test_it_settles_processing_payouts_whose_stripe_status_moved(account, sent, now):
    creator = account()
    paid, _ = sent(creator, status=Status.PROCESSING, stripe_status="paid")
    failed, _ = sent(creator, status=Status.PROCESSING, stripe_status="canceled")
    waiting, _ = sent(creator, status=Status.PROCESSING, stripe_status="in_transit")

    run = reconcile(now)

    assert Payout.objects.get(pk=paid.pk).status == Status.PAID
    assert Payout.objects.get(pk=failed.pk).status == Status.FAILED
    assert Payout.objects.get(pk=waiting.pk).status == Status.PROCESSING
    assert (run.stats["settled"], run.stats["matched"], run.stats["mismatches"]) == (2, 3, 0)
    # The same rows as polling would write.
    assert Log.objects.filter(type="PAYOUT_SUCCESS", context__event="paid").count() == 1


def test_it_resolves_flagged_payouts_it_can_prove_both_ways(account, sent, now):
    creator = account()
    found, found_id = sent(
        creator,
        status=Status.PROCESSING,
        record=False,
        stripe_status="paid",
        claimed_at=now - timedelta(hours=60),
        flagged_at=now - timedelta(hours=30),
    )
    absent = Payout.objects.create(
        creator=creator,
        amount=Decimal("30.00"),
        status=Status.PROCESSING,
        claimed_at=now - timedelta(hours=49),
        flagged_at=now - timedelta(hours=20),
    )
    recent = Payout.objects.create(
        creator=creator,
        amount=Decimal("40.00"),
        status=Status.PROCESSING,
        claimed_at=now - timedelta(hours=30),
        flagged_at=now - timedelta(hours=5),
    )

    run = reconcile(now)

    # Found on Stripe: recorded, unflagged, and PAID as Stripe says.
    found.refresh_from_db()
    assert (found.stripe_payout_id, found.status, found.flagged_at) == (
        found_id,
        Status.PAID,
        None,
    )
    assert found.metadata["resolvedBy"] == "reconcile-payouts"
    # Absent with its claim over 48 h old: FAILED, so the creator can ask again.
    absent.refresh_from_db()
    assert (absent.status, absent.failure_reason) == (Status.FAILED, "Never created on Stripe")
    assert absent.flagged_at is None and absent.failed_at == now
    # Absent but claimed only 30 h ago: left flagged for now.
    recent.refresh_from_db()
    assert recent.status == Status.PROCESSING and recent.flagged_at is not None
    assert run.stats["resolved"] == 2 and run.stats["mismatches"] == 0


def test_it_lists_far_enough_back_to_prove_an_old_flagged_payout_absent(
    account, stripe_fake, now, settings
):
    settings.PAYOUT_RECONCILE_DAYS = 30
    creator = account()
    old = Payout.objects.create(
        creator=creator,
        amount=Decimal("30.00"),
        status=Status.PROCESSING,
        claimed_at=now - timedelta(days=45),
        flagged_at=now - timedelta(days=44),
    )
    # It exists on Stripe, created 45 days ago: outside the 30-day window.
    stripe_id = stripe_fake.add_payout(
        creator.stripe_account_id,
        amount=3_000,
        status="paid",
        metadata={"payoutId": old.pk},
        created=(now - timedelta(days=45) + timedelta(seconds=1)).timestamp(),
    )

    reconcile(now)

    # It should have listed from before the claim, found it, and not failed it.
    old.refresh_from_db()
    assert (old.status, old.stripe_payout_id) == (Status.PAID, stripe_id)


def test_it_records_a_payout_stripe_created_whose_id_we_never_stored(account, sent, now):
    payout, stripe_id = sent(
        account(), status=Status.PROCESSING, record=False, stripe_status="pending"
    )

    run = reconcile(now)

    payout.refresh_from_db()
    assert (payout.stripe_payout_id, payout.status) == (stripe_id, Status.PROCESSING)
    assert run.stats["recorded"] == 1 and run.stats["matched"] == 1


def test_it_reports_a_second_stripe_payout_and_contradicting_statuses(
    account, sent, stripe_fake, now
):
    creator = account()
    twice, _ = sent(creator)
    second = stripe_fake.add_payout(
        creator.stripe_account_id, amount=1_000, metadata={"payoutId": twice.pk}
    )
    reversed_, _ = sent(creator, status=Status.PAID, stripe_status="failed")
    # Another creator's payout, found on this account.
    elsewhere = Payout.objects.create(
        creator=account(), amount=Decimal("10.00"), status=Status.PAID, claimed_at=now
    )
    misplaced = stripe_fake.add_payout(
        creator.stripe_account_id, amount=1_000, metadata={"payoutId": elsewhere.pk}
    )

    run = reconcile(now)

    kinds = {
        (row.context["mismatch"], row.context["stripePayoutId"]) for row in critical_mismatches()
    }
    assert ("duplicate", second) in kinds
    assert ("account", misplaced) in kinds
    assert any(kind == "status" for kind, _ in kinds)
    assert run.stats["mismatches"] == 3 == critical_mismatches().count()
    assert Payout.objects.get(pk=reversed_.pk).status == Status.PAID


def test_it_pages_through_an_account_with_one_list_call_per_page(account, sent, stripe_fake, now):
    creator = account()
    for _ in range(250):
        sent(creator)

    run = reconcile(now)

    # 250 payouts at 100 a page: three list calls, nothing else.
    assert run.stats["matched"] == 250 and run.stats["mismatches"] == 0
    assert len(stripe_fake.payout_lists()) == 3 == len(stripe_fake.requests)


def test_it_checks_only_accounts_with_recent_or_unsettled_payouts(
    account, make_payout, stripe_fake, now, settings
):
    settings.PAYOUT_RECONCILE_DAYS = 30
    recent, old, in_flight, never_sent = account(), account(), account(), account()
    make_payout(creator=recent, status=Status.PAID, claimed_at=now - timedelta(days=2))
    make_payout(creator=old, status=Status.PAID, claimed_at=now - timedelta(days=40))
    make_payout(creator=in_flight, status=Status.PROCESSING, claimed_at=now - timedelta(days=90))
    make_payout(creator=never_sent, status=Status.APPROVED)

    run = reconcile(now)

    listed = {request[2] for request in stripe_fake.payout_lists()}
    assert listed == {recent.stripe_account_id, in_flight.stripe_account_id}
    assert run.stats["accountsChecked"] == 2


def test_a_stripe_outage_on_every_account_fails_the_run(account, sent, stripe_fake, settings):
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    for _ in range(3):
        sent(account())
    stripe_fake.fail_next("GET", r"^/v1/payouts$", status=503, times=3)

    result = run_job("reconcile-payouts")

    # It should fail the run, say why, and keep what it saw in the stats.
    assert result.failed and "every attempted item failed (3 of 3)" in result.error
    assert result.stats["accountsFailed"] == 3 and result.stats["accountsChecked"] == 0
    assert Log.objects.get(type="CRON_ERROR").context["cronType"] == "reconcile-payouts"


def test_one_account_down_degrades_the_run(account, sent, stripe_fake, settings):
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    for _ in range(2):
        sent(account())
    stripe_fake.fail_next("GET", r"^/v1/payouts$", status=500, times=1)

    result = run_job("reconcile-payouts")

    assert result.status == "degraded" and result.stats["accountsChecked"] == 1
    assert result.stats["errors"][0]["error"].startswith("Stripe unavailable 500")


def test_a_refused_key_stops_the_run(account, sent, stripe_fake):
    sent(account())
    sent(account())
    stripe_fake.fail_next(
        "GET", r"^/v1/payouts$", status=401, error={"type": "invalid_request_error", "message": "x"}
    )

    result = run_job("reconcile-payouts")

    assert result.failed and "Stripe authentication 401" in result.error
    assert len(stripe_fake.payout_lists()) == 1


def test_its_dry_run_reports_what_it_would_change_and_changes_nothing(account, sent, now):
    creator = account()
    moving, _ = sent(creator, status=Status.PROCESSING, stripe_status="paid")
    sent(creator, stripe_amount=5)
    before = list(Payout.objects.values().order_by("pk"))

    result = run_job("reconcile-payouts", dry_run=True)

    assert result.stats["wouldSettle"] == [
        {"payoutId": moving.pk, "stripePayoutId": moving.stripe_payout_id, "stripeStatus": "paid"}
    ]
    assert result.stats["mismatches"] == 1 and result.stats["stripeChecked"] is True
    assert any("MISMATCH (amount)" in line for line in result.details)
    assert list(Payout.objects.values().order_by("pk")) == before
    assert not Log.objects.exists()


def test_its_dry_run_without_a_key_lists_the_accounts_it_would_check(
    make_creator, make_payout, settings, now
):
    settings.STRIPE_SECRET_KEY = ""
    creator = make_creator()
    make_payout(creator=creator, status=Status.PAID, claimed_at=now - timedelta(days=1))

    result = run_job("reconcile-payouts", dry_run=True)

    assert not result.failed
    assert result.stats["accountsToCheck"] == 1 and result.stats["stripeChecked"] is False
    assert "STRIPE_SECRET_KEY" in result.stats["note"]
    assert creator.stripe_account_id in result.details[0]


def test_the_command_runs_the_job_through_the_runner(account, sent):
    sent(account())
    out = StringIO()

    call_command("reconcile_payouts", "--json", stdout=out)

    result = json.loads(out.getvalue())
    assert result["success"] and result["cronType"] == "reconcile-payouts"
    assert result["stats"]["matched"] == 1 and result["itemsProcessed"] == 1
    row = Log.objects.get(type="CRON_RUN")
    for key in ("accountsChecked", "stripePayoutsSeen", "matched", "settled", "resolved"):
        assert key in row.context
    assert row.context["mismatches"] == 0


def test_it_needs_the_stripe_key_for_a_real_run(settings):
    settings.STRIPE_SECRET_KEY = ""

    result = run_job("reconcile-payouts")

    assert result.failed and "STRIPE_SECRET_KEY" in result.error
    assert "STRIPE_SECRET_KEY" in Log.objects.get(type="CRON_ERROR").message
