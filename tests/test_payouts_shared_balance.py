"""Payouts that share a balance, many currencies, blocked creators, concurrency (issues 12, 14)."""

import json
from decimal import Decimal

import pytest
from django.utils import timezone

from cronlogs.models import Log
from cronlogs.runner import run_job
from payouts import stripe_client
from payouts.automatic import process_automatic_payouts
from payouts.models import Payout
from payouts.processing import process_payouts
from tests.conftest import job_run
from tests.processes import race
from tests.stripe_fake import served_stripe

Status = Payout.Status


@pytest.fixture
def creator_with(make_creator, stripe_fake):
    def make(balance, **fields):
        fields.setdefault("payout_schedule", "DAILY")
        creator = make_creator(**fields)
        stripe_fake.add_account(creator.stripe_account_id, balance=balance)
        return creator

    return make


def run(job, now=None):
    work = job_run(now)
    job(work)
    return work.stats


@pytest.mark.django_db
@pytest.mark.parametrize("automatic_first", [True, False])
def test_a_manual_payout_is_paid_whichever_job_runs_first(
    creator_with, make_payout, stripe_fake, automatic_first
):
    creator = creator_with({"EUR": 10_000})
    manual = make_payout(creator=creator, amount=Decimal("60.00"))
    jobs = [process_automatic_payouts, process_payouts]

    for job in jobs if automatic_first else jobs[::-1]:
        run(job)

    # It should pay the manual 60 and automatically the 40 left, 100 in all.
    manual.refresh_from_db()
    assert manual.status == Status.PROCESSING and manual.stripe_payout_id
    automatic = Payout.objects.get(automatic=True)
    assert (automatic.amount, automatic.currency) == (Decimal("40.00"), "EUR")
    assert sum(int(params["amount"]) for _, _, params in stripe_fake.creations) == 10_000
    assert stripe_fake.balance(creator.stripe_account_id, "EUR") == 0


@pytest.mark.django_db
def test_every_currency_is_paid_out_against_its_own_minimum(creator_with, stripe_fake):
    creator = creator_with({"EUR": 500, "USD": 900_000, "JPY": 500}, currency="EUR")

    stats = run(process_automatic_payouts)

    # It should pay the 9,000.00 USD, and skip the EUR and JPY naming their minimums.
    payouts = {p.currency: p for p in Payout.objects.filter(automatic=True)}
    assert set(payouts) == {"USD"} and payouts["USD"].amount == Decimal("9000.00")
    assert payouts["USD"].idempotency_key.endswith("-USD")
    reasons = {entry["currency"]: entry["reason"] for entry in stats["skippedCreators"]}
    assert reasons == {
        "EUR": "Available balance 5.00 EUR is below the payout minimum 10.00 EUR",
        "JPY": "Available balance 500.00 JPY is below the payout minimum 1000.00 JPY",
    }
    assert stats["totalAmountByCurrency"] == {"USD": "9000.00"}
    assert [c[2]["currency"] for c in stripe_fake.creations] == ["usd"]
    assert creator.payout_minimum == Decimal("10.00")


@pytest.mark.django_db
def test_a_currency_without_a_minimum_is_left_and_said_so(creator_with, settings):
    settings.PAYOUT_MINIMUMS = {"EUR": Decimal("10")}
    creator_with({"CHF": 50_000, "EUR": 0})

    stats = run(process_automatic_payouts)

    assert not Payout.objects.exists()
    reasons = {entry["currency"]: entry["reason"] for entry in stats["skippedCreators"]}
    assert reasons["CHF"].startswith("No payout minimum for CHF: add one to PAYOUT_MINIMUMS")


@pytest.mark.django_db
def test_a_blocked_creator_is_never_paid_again_not_even_a_claim_in_doubt(
    creator_with, make_payout, stripe_fake
):
    creator = creator_with({"EUR": 50_000})
    payout = make_payout(creator=creator, amount=Decimal("100.00"))
    # Stripe answers 500 to the creation: the outcome is unknown, the claim is kept.
    stripe_fake.fail_next("POST", r"^/v1/payouts$", status=500, times=3)
    run(process_payouts)
    payout.refresh_from_db()
    assert payout.status == Status.PROCESSING and payout.stripe_payout_id is None
    creator.is_payout_blocked = True
    creator.payout_block_reason = "Chargeback"
    creator.save()
    posts_before = len(stripe_fake.payout_posts())

    stats = run(process_payouts)

    # It should not re-send it; it should flag it for staff with a CRITICAL row instead.
    assert len(stripe_fake.payout_posts()) == posts_before
    payout.refresh_from_db()
    assert payout.flagged_at is not None and payout.status == Status.PROCESSING
    row = Log.objects.filter(type="PAYOUT_ERROR", level="CRITICAL").get()
    assert "blocked" in row.context["error"] and row.context["needsReview"] is True
    assert stats["needsReview"] == 1


@pytest.mark.django_db
def test_no_job_or_action_pays_a_blocked_creator(creator_with, make_payout, stripe_fake):
    creator = creator_with({"EUR": 50_000}, is_payout_blocked=True)
    make_payout(creator=creator, amount=Decimal("10.00"))

    run(process_payouts)
    run(process_automatic_payouts)

    assert stripe_fake.payout_posts() == []


@pytest.mark.django_db(transaction=True)
def test_it_pays_creators_concurrently_reading_each_balance_once(
    make_creator, make_payout, stripe_fake, settings
):
    settings.STRIPE_CONCURRENCY = 4
    creators = []
    for _ in range(8):
        creator = make_creator()
        stripe_fake.add_account(creator.stripe_account_id, balance={"EUR": 100_000})
        creators.append(creator)
    payouts = [make_payout(creator=c, amount=Decimal("10.00")) for c in creators for _ in range(4)]

    result = run_job("process-payouts")

    # It should pay every payout once, with one account and one balance read per creator.
    assert result.status == "success", result.error
    assert result.stats["succeeded"] == len(payouts)
    assert stripe_fake.creations_by_key() == {
        p.idempotency_key or f"callastar-payout-{p.pk}": 1 for p in payouts
    }
    gets = [r for r in stripe_fake.requests if r[0] == "GET"]
    assert len([r for r in gets if r[1] == "/v1/balance"]) == len(creators)
    assert len([r for r in gets if r[1].startswith("/v1/accounts/")]) == len(creators)
    assert set(Payout.objects.values_list("status", flat=True)) == {Status.PROCESSING}


@pytest.mark.django_db
def test_it_retries_a_429_with_backoff_and_the_same_key(creator_with, make_payout, stripe_fake):
    payout = make_payout(creator=creator_with({"EUR": 50_000}), amount=Decimal("10.00"))
    stripe_fake.fail_next(
        "POST",
        r"^/v1/payouts$",
        status=429,
        error={
            "type": "invalid_request_error",
            "code": "rate_limit",
            "message": "Too many requests",
        },
    )

    stats = run(process_payouts)

    # It should wait, retry with the same idempotency key, and pay once.
    assert stats["succeeded"] == 1
    keys = [r[3] for r in stripe_fake.payout_posts()]
    assert keys == [f"callastar-payout-{payout.pk}"] * 2
    assert len(stripe_fake.creations) == 1


def test_every_stripe_request_waits_for_the_shared_pacer(settings, monkeypatch):
    from tests.stripe_fake import mocked_stripe

    settings.STRIPE_MAX_REQUESTS_PER_SECOND = 7
    waits = []
    with mocked_stripe(settings) as fake:
        fake.add_account("acct_1", balance={"EUR": 100})
        pacer = stripe_client.client()._requestor._client.pacer
        monkeypatch.setattr(pacer, "wait", lambda: waits.append(1))
        stripe_client.retrieve_account("acct_1")
        stripe_client.retrieve_balance("acct_1")

    # It should pace each request, on one pacer at the configured rate.
    assert len(waits) == 2
    assert pacer.interval == pytest.approx(1 / 7)


CHILD = """
import json, sys
import django
django.setup()
from cronlogs.runner import run_job
from tests.processes import wait_for_start_signal
wait_for_start_signal()
result = run_job(sys.argv[1])
print(json.dumps({"status": result.status, "error": result.error}))
"""


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_both_payout_jobs_started_together_pay_the_manual_payout_every_time(
    make_creator, make_payout, subprocess_env, tmp_path
):
    with served_stripe() as (fake, base_url):
        env = {
            **subprocess_env,
            "STRIPE_SECRET_KEY": fake.api_key,
            "STRIPE_API_BASE": base_url,
            "STRIPE_MAX_REQUESTS_PER_SECOND": "100",
        }
        for attempt in range(10):
            creator = make_creator(payout_schedule="DAILY")
            fake.add_account(creator.stripe_account_id, balance={"EUR": 10_000})
            manual = make_payout(
                creator=creator, amount=Decimal("60.00"), approved_at=timezone.now()
            )
            fake.creations.clear()
            workdir = tmp_path / str(attempt)
            workdir.mkdir()

            outcomes = race(
                CHILD,
                [env, {**env}],
                workdir,
                args=[["process-payouts"], ["process-automatic-payouts"]],
            )

            # Both should finish; the manual payout is paid, the automatic one takes 40.
            assert [code for code, _, _ in outcomes] == [0, 0], outcomes
            results = [json.loads(out.strip().splitlines()[-1]) for _, out, _ in outcomes]
            assert {r["status"] for r in results} == {"success"}, results
            manual.refresh_from_db()
            assert manual.status == Status.PROCESSING and manual.stripe_payout_id, attempt
            automatic = Payout.objects.get(creator=creator, automatic=True)
            assert automatic.amount == Decimal("40.00"), attempt
            assert sum(int(p["amount"]) for _, _, p in fake.creations) == 10_000, attempt
