"""process-payouts: pay APPROVED payouts on Stripe exactly once, settle PROCESSING ones."""

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
import responses
from django.core.management import CommandError, call_command
from django.utils import timezone

from cronlogs.models import Log
from cronlogs.runner import run_job
from payouts import processing
from payouts.models import Payout
from payouts.processing import pay_approved_payouts, process_payouts
from tests.conftest import job_run
from tests.processes import race
from tests.stripe_fake import served_stripe

pytestmark = pytest.mark.django_db
Status = Payout.Status


class Crash(BaseException):
    """The process dying at this point (not an error the job could handle)."""


@pytest.fixture
def funded_creator(make_creator, stripe_fake):
    """A creator whose Stripe account can pay out and holds `balance` (minor units)."""

    def make(balance=100_000, currency="EUR", payouts_enabled=True, **fields):
        creator = make_creator(currency=currency, **fields)
        stripe_fake.add_account(
            creator.stripe_account_id,
            balance={currency: balance},
            payouts_enabled=payouts_enabled,
        )
        return creator

    return make


def run(now):
    work = job_run(now)
    process_payouts(work)
    return work.stats


def test_it_pays_an_approved_payout_with_a_key_derived_from_it(
    funded_creator, make_payout, stripe_fake, now
):
    creator = funded_creator(balance=50_000)
    payout = make_payout(creator=creator, amount=Decimal("120.50"))

    stats = run(now)

    # It should create one Stripe payout on the creator's account, in minor units.
    payout.refresh_from_db()
    assert payout.status == Status.PROCESSING
    assert payout.idempotency_key == f"callastar-payout-{payout.pk}"
    assert payout.claimed_at == now
    account, key, params = stripe_fake.creations[0]
    assert (account, key) == (creator.stripe_account_id, payout.idempotency_key)
    assert (params["amount"], params["currency"]) == ("12050", "eur")
    assert payout.stripe_payout_id == next(iter(stripe_fake.payouts))

    # It should log the payout and count it.
    row = Log.objects.get(type="PAYOUT_SUCCESS")
    assert row.context["payoutId"] == payout.pk and row.context["creatorId"] == creator.pk
    assert (row.context["amount"], row.context["currency"]) == ("120.50", "EUR")
    assert row.context["stripePayoutId"] == payout.stripe_payout_id
    assert stats["succeeded"] == 1 and stats["failed"] == 0 and stats["skipped"] == 0
    assert stats["errors"] == [] and stats["itemsProcessed"] == 1


def test_it_pays_oldest_first_and_fails_what_the_balance_cannot_cover(
    funded_creator, make_payout, stripe_fake, now
):
    creator = funded_creator(balance=15_000)
    newer = make_payout(creator=creator, amount=Decimal("100.00"), approved_at=now)
    older = make_payout(
        creator=creator, amount=Decimal("100.00"), approved_at=now - timedelta(hours=1)
    )

    stats = run(now)

    # It should pay the older approval and fail the newer one: 150.00 cannot cover both.
    older.refresh_from_db()
    newer.refresh_from_db()
    assert older.status == Status.PROCESSING and older.stripe_payout_id
    assert newer.status == Status.FAILED
    assert newer.failure_reason == "Insufficient balance" and newer.failed_at == now
    assert len(stripe_fake.creations) == 1
    assert stats["succeeded"] == 1 and stats["failed"] == 1
    assert stats["errors"] == [
        {"creatorId": creator.pk, "payoutId": newer.pk, "error": "Insufficient balance"}
    ]
    error_row = Log.objects.get(type="PAYOUT_ERROR")
    assert error_row.context["payoutId"] == newer.pk and error_row.level == "ERROR"


@pytest.mark.parametrize("amount", [Decimal("0.00"), Decimal("-25.00")])
def test_it_fails_a_payout_of_zero_or_less_without_calling_stripe(
    funded_creator, make_payout, stripe_fake, now, amount
):
    payout = make_payout(creator=funded_creator(), amount=amount)

    stats = run(now)

    # It should refuse the malformed row with a clear reason and send nothing to Stripe.
    payout.refresh_from_db()
    assert payout.status == Status.FAILED
    assert payout.failure_reason == f"A payout must be more than zero, not {amount}"
    assert stripe_fake.creations == []
    assert stats["failed"] == 1 and stats["succeeded"] == 0


@pytest.mark.parametrize(
    ("currency", "reason"),
    [
        ("XXX", "'XXX' is not a currency Stripe pays out in"),
        ("", "A payout needs a currency"),
    ],
)
def test_it_fails_a_payout_in_a_currency_stripe_does_not_pay_out(
    funded_creator, make_payout, stripe_fake, now, currency, reason
):
    # Written straight through the ORM, as an import might.
    payout = make_payout(creator=funded_creator(), currency=currency)

    stats = run(now)

    payout.refresh_from_db()
    assert payout.status == Status.FAILED and payout.failure_reason.startswith(reason)
    assert stripe_fake.payout_posts() == [] and stats["failed"] == 1


def test_it_pays_a_lower_case_currency_written_through_the_orm(
    funded_creator, make_payout, stripe_fake, now
):
    payout = make_payout(creator=funded_creator(), currency="eur", amount=Decimal("5.00"))

    stats = run(now)

    assert stats["succeeded"] == 1
    assert stripe_fake.creations[0][2]["currency"] == "eur"
    payout.refresh_from_db()
    assert payout.status == Status.PROCESSING


def test_it_skips_blocked_unonboarded_and_payouts_disabled_creators(
    funded_creator, make_creator, make_payout, stripe_fake, now
):
    blocked = make_payout(
        creator=funded_creator(is_payout_blocked=True, payout_block_reason="Fraud review")
    )
    not_onboarded = make_payout(
        creator=make_creator(is_stripe_onboarded=False, stripe_account_id=None)
    )
    disabled = make_payout(creator=funded_creator(payouts_enabled=False))
    paid = make_payout(creator=funded_creator())

    stats = run(now)

    # It should leave the first three APPROVED, say why, and still pay the fourth.
    for payout in (blocked, not_onboarded, disabled):
        payout.refresh_from_db()
        assert payout.status == Status.APPROVED and payout.claimed_at is None
    paid.refresh_from_db()
    assert paid.status == Status.PROCESSING
    assert stats["skipped"] == 3 and stats["succeeded"] == 1
    reasons = {entry["payoutId"]: entry["reason"] for entry in stats["skippedPayouts"]}
    assert reasons == {
        blocked.pk: "Creator payouts are blocked: Fraud review",
        not_onboarded.pk: "Creator has no onboarded Stripe account",
        disabled.pk: "Stripe reports payouts are not enabled for this account",
    }
    assert [c[1] for c in stripe_fake.creations] == [paid.idempotency_key]


def test_it_pays_once_when_stripe_answers_500_then_succeeds(
    funded_creator, make_payout, stripe_fake, now
):
    payout = make_payout(creator=funded_creator())
    stripe_fake.fail_next("POST", r"^/v1/payouts$", status=500)

    stats = run(now)

    # It should retry with the same key and end with one payout on Stripe.
    payout.refresh_from_db()
    assert payout.status == Status.PROCESSING and payout.stripe_payout_id
    keys = [request[3] for request in stripe_fake.payout_posts()]
    assert keys == [payout.idempotency_key, payout.idempotency_key]
    assert len(stripe_fake.creations) == 1 and stats["succeeded"] == 1


def test_it_keeps_the_claim_and_pays_on_the_next_run_when_stripe_stays_down(
    funded_creator, make_payout, stripe_fake, now, settings
):
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    payout = make_payout(creator=funded_creator())
    stripe_fake.fail_next("POST", r"^/v1/payouts$", status=503)

    first = run(now)

    # It should leave the payout claimed, with its key, for the next run to re-send.
    payout.refresh_from_db()
    assert payout.status == Status.PROCESSING and payout.stripe_payout_id is None
    assert first["retrying"] == 1 and first["succeeded"] == 0
    assert first["errors"][0]["payoutId"] == payout.pk
    assert "503" in first["errors"][0]["error"]

    second = run(now + timedelta(hours=1))

    payout.refresh_from_db()
    assert payout.stripe_payout_id and second["succeeded"] == 1
    assert len(stripe_fake.creations) == 1


def test_it_fails_a_payout_stripe_declines_with_stripes_message_and_pays_the_others(
    funded_creator, make_payout, stripe_fake, now
):
    declined = make_payout(creator=funded_creator(), approved_at=now - timedelta(minutes=5))
    other = make_payout(creator=funded_creator(), approved_at=now)
    stripe_fake.decline_next_payout(
        "Your card was declined.", code="card_declined", status=402, type="card_error"
    )

    stats = run(now)

    # It should fail the declined payout with Stripe's own message and carry on.
    declined.refresh_from_db()
    other.refresh_from_db()
    assert declined.status == Status.FAILED
    assert declined.failure_reason == "Your card was declined."
    assert other.status == Status.PROCESSING and other.stripe_payout_id
    assert stats["failed"] == 1 and stats["succeeded"] == 1
    row = Log.objects.get(type="PAYOUT_ERROR")
    assert row.context["payoutId"] == declined.pk
    assert "card_declined" in row.context["error"]


def test_it_fails_a_payout_on_an_invalid_request_error(
    funded_creator, make_payout, stripe_fake, now
):
    payout = make_payout(creator=funded_creator())
    stripe_fake.decline_next_payout(
        "The bank account is not valid for payouts.", code="invalid_payout_destination"
    )

    stats = run(now)

    payout.refresh_from_db()
    assert payout.status == Status.FAILED
    assert payout.failure_reason == "The bank account is not valid for payouts."
    assert stats["failed"] == 1 and stripe_fake.creations == []


def test_it_fails_the_run_and_keeps_the_payouts_when_stripe_cannot_take_our_request(
    funded_creator, make_payout, stripe_fake, now
):
    payouts = [make_payout(creator=funded_creator()) for _ in range(2)]
    stripe_fake.fail_next(
        "POST",
        r"^/v1/payouts$",
        status=400,
        error={
            "type": "invalid_request_error",
            "code": "parameter_unknown",
            "param": "destination_typo",
            "message": "Received unknown parameter: destination_typo",
        },
        times=2,
    )

    result = run_job("process-payouts", now=now)

    # It should fail the run, not the payouts: the request was wrong, not the payouts.
    assert result.failed and "parameter_unknown" in result.error
    assert {Payout.objects.get(pk=p.pk).status for p in payouts} == {Status.PROCESSING}
    assert stripe_fake.creations == []

    # It should pay them, with their keys, once Stripe takes the request.
    run(now + timedelta(hours=1))
    assert len(stripe_fake.creations) == 2
    assert all(Payout.objects.get(pk=p.pk).stripe_payout_id for p in payouts)


def test_it_pays_once_after_a_crash_between_stripe_and_the_database(
    funded_creator, make_payout, stripe_fake, now, monkeypatch
):
    payout = make_payout(creator=funded_creator(balance=100_000))

    def crash(*args, **kwargs):
        raise Crash

    # The process dies after Stripe created the payout, before we stored its id.
    with monkeypatch.context() as patch:
        patch.setattr(processing, "record_stripe_payout", crash)
        with pytest.raises(Crash):
            pay_approved_payouts(job_run(now))
    payout.refresh_from_db()
    assert payout.status == Status.PROCESSING and payout.stripe_payout_id is None
    assert len(stripe_fake.creations) == 1

    stats = run(now + timedelta(hours=1))

    # It should re-send with the same key; Stripe replays; one payout, recorded.
    payout.refresh_from_db()
    posts = stripe_fake.payout_posts()
    assert [p[3] for p in posts] == [payout.idempotency_key] * 2
    assert len(stripe_fake.creations) == 1
    assert payout.status == Status.PROCESSING
    assert payout.stripe_payout_id == next(iter(stripe_fake.payouts))
    assert Payout.objects.count() == 1 and stats["succeeded"] == 1
    assert stripe_fake.balance(payout.creator.stripe_account_id, "EUR") == 90_000


def test_it_tells_staff_when_stripe_paid_a_payout_marked_failed_during_the_call(
    funded_creator, make_payout, stripe_fake, now, monkeypatch
):
    payout = make_payout(creator=funded_creator(balance=100_000))
    create = processing.stripe_client.create_payout

    def create_while_staff_mark_it_failed(**kwargs):
        created = create(**kwargs)
        Payout.objects.filter(pk=payout.pk).update(status=Status.FAILED, failed_at=now)
        return created

    monkeypatch.setattr(
        processing.stripe_client, "create_payout", create_while_staff_mark_it_failed
    )
    stats = run(now)

    # It should not report the payout sent: Stripe paid it, our row says FAILED.
    stripe_id = next(iter(stripe_fake.payouts))
    row = Log.objects.get(type="PAYOUT_ERROR")
    assert row.level == "CRITICAL" and row.context["needsReview"] is True
    assert row.context["stripePayoutId"] == stripe_id
    assert f"Stripe created payout {stripe_id}" in row.context["error"]
    assert "now FAILED" in row.context["error"]
    assert not Log.objects.filter(type="PAYOUT_SUCCESS").exists()
    assert stats["needsReview"] == 1 and stats["succeeded"] == 0


def test_it_flags_an_unconfirmed_claim_older_than_24_hours_instead_of_resending(
    funded_creator, make_payout, stripe_fake, now
):
    payout = make_payout(
        creator=funded_creator(),
        status=Status.PROCESSING,
        claimed_at=now - timedelta(hours=25),
        idempotency_key="callastar-payout-old",
    )

    stats = run(now)

    # It should not call Stripe: the key may be forgotten and a re-send could pay twice.
    assert stripe_fake.payout_posts() == []
    payout.refresh_from_db()
    assert payout.status == Status.PROCESSING and payout.flagged_at == now
    row = Log.objects.get(type="PAYOUT_ERROR")
    assert row.level == "CRITICAL" and row.context["needsReview"] is True
    assert "callastar-payout-old" in row.context["error"]
    assert stats["needsReview"] == 1 and stats["errors"][0]["payoutId"] == payout.pk

    # It should tell staff once, not on every run.
    run(now + timedelta(hours=1))
    assert Log.objects.filter(type="PAYOUT_ERROR").count() == 1


def test_it_settles_processing_payouts_from_stripes_status(
    funded_creator, make_payout, stripe_fake, now
):
    creator = funded_creator()
    payouts = {}
    for status in ("paid", "failed", "canceled", "in_transit"):
        payouts[status] = make_payout(creator=creator, amount=Decimal("10.00"))
    run(now - timedelta(hours=1))
    for payout in payouts.values():
        payout.refresh_from_db()
    stripe_fake.set_payout_status(payouts["paid"].stripe_payout_id, "paid")
    stripe_fake.set_payout_status(
        payouts["failed"].stripe_payout_id,
        "failed",
        failure_code="account_closed",
        failure_message="The bank account has been closed.",
    )
    stripe_fake.set_payout_status(payouts["canceled"].stripe_payout_id, "canceled")
    stripe_fake.set_payout_status(payouts["in_transit"].stripe_payout_id, "in_transit")

    stats = run(now)

    # It should follow Stripe: paid -> PAID, failed/canceled -> FAILED, in transit -> wait.
    for payout in payouts.values():
        payout.refresh_from_db()
    assert payouts["paid"].status == Status.PAID and payouts["paid"].paid_at == now
    assert payouts["failed"].status == Status.FAILED and payouts["failed"].failed_at == now
    assert payouts["failed"].failure_reason == "The bank account has been closed. (account_closed)"
    assert payouts["canceled"].status == Status.FAILED
    assert payouts["canceled"].failure_reason == "Stripe reports the payout canceled"
    assert payouts["in_transit"].status == Status.PROCESSING
    assert stats["paid"] == 1 and stats["failed"] == 2
    assert Log.objects.filter(type="PAYOUT_SUCCESS", context__event="paid").count() == 1


def test_it_fails_the_run_naming_the_missing_key(make_payout, settings):
    settings.STRIPE_SECRET_KEY = ""
    payout = make_payout()

    result = run_job("process-payouts")

    # It should fail loudly, name the variable, and leave the payout untouched.
    assert result.failed and "STRIPE_SECRET_KEY" in result.error
    assert Log.objects.get().type == "CRON_ERROR"
    payout.refresh_from_db()
    assert payout.status == Status.APPROVED


def test_it_dry_runs_from_the_database_alone_without_a_key(make_creator, make_payout, settings):
    settings.STRIPE_SECRET_KEY = ""
    payable = make_payout(amount=Decimal("42.00"))
    blocked = make_payout(creator=make_creator(is_payout_blocked=True))

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        result = run_job("process-payouts", dry_run=True)
        assert len(mock.calls) == 0

    # It should say who would be paid how much, and that Stripe was not asked.
    assert not result.failed
    assert result.stats["stripeChecked"] is False and "STRIPE_SECRET_KEY" in result.stats["note"]
    assert result.stats["wouldPay"] == [
        {
            "payoutId": payable.pk,
            "creatorId": payable.creator_id,
            "amount": "42.00",
            "currency": "EUR",
        }
    ]
    assert [entry["payoutId"] for entry in result.stats["wouldSkip"]] == [blocked.pk]
    assert result.stats["wouldPayAmountByCurrency"] == {"EUR": "42.00"}
    # It should change nothing and write no row.
    assert set(Payout.objects.values_list("status", flat=True)) == {Status.APPROVED}
    assert not Log.objects.exists()


def test_it_dry_runs_with_stripes_read_only_checks_when_a_key_is_set(
    funded_creator, make_payout, stripe_fake
):
    payable = make_payout(creator=funded_creator(balance=10_000), amount=Decimal("80.00"))
    poor = make_payout(creator=funded_creator(balance=100), amount=Decimal("80.00"))
    disabled = make_payout(creator=funded_creator(payouts_enabled=False))

    result = run_job("process-payouts", dry_run=True)

    # It should read accounts and balances, create nothing and change nothing.
    assert [e["payoutId"] for e in result.stats["wouldPay"]] == [payable.pk]
    assert result.stats["wouldFail"][0] == {
        "payoutId": poor.pk,
        "creatorId": poor.creator_id,
        "amount": "80.00",
        "currency": "EUR",
        "reason": "Insufficient balance",
    }
    assert [e["payoutId"] for e in result.stats["wouldSkip"]] == [disabled.pk]
    assert {request[0] for request in stripe_fake.requests} == {"GET"}
    assert set(Payout.objects.values_list("status", flat=True)) == {Status.APPROVED}


def test_the_command_runs_the_job_through_the_runner(funded_creator, make_payout):
    make_payout(creator=funded_creator())
    out = StringIO()

    call_command("process_payouts", "--json", stdout=out)

    # It should print the result and write one CRON_RUN row with the payout stats.
    result = json.loads(out.getvalue())
    assert result["success"] and result["stats"]["succeeded"] == 1
    row = Log.objects.get(type="CRON_RUN")
    assert row.context["cronType"] == "process-payouts"
    assert row.context["itemsProcessed"] == 1
    for key in ("succeeded", "failed", "skipped", "errors"):
        assert key in row.context


CHILD = """
import json
import django
django.setup()
from cronlogs.work import JobRun
from payouts.processing import pay_approved_payouts
from tests.processes import wait_for_start_signal
wait_for_start_signal()
run = JobRun()
pay_approved_payouts(run)
print(json.dumps({"succeeded": run.stats["succeeded"], "errors": run.stats["errors"]}))
"""


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_it_pays_each_payout_once_when_two_processes_race(
    make_creator, make_payout, subprocess_env, tmp_path
):
    with served_stripe() as (fake, base_url):
        payouts = []
        for _ in range(5):
            creator = make_creator()
            fake.add_account(creator.stripe_account_id, balance={"EUR": 10_000_000})
            payouts += [make_payout(creator=creator, amount=Decimal("10.00")) for _ in range(10)]
        env = {
            **subprocess_env,
            "STRIPE_SECRET_KEY": fake.api_key,
            "STRIPE_API_BASE": base_url,
            "STRIPE_MAX_NETWORK_RETRIES": "2",
        }
        outcomes = race(CHILD, [env, env], tmp_path)

    # Both workers should finish cleanly, between them paying all 50.
    assert [returncode for returncode, _, _ in outcomes] == [0, 0], outcomes
    results = [json.loads(stdout.strip().splitlines()[-1]) for _, stdout, _ in outcomes]
    assert sum(result["succeeded"] for result in results) == 50
    assert all(result["errors"] == [] for result in results)

    # Stripe should have executed exactly one creation per payout, and the DB agree.
    expected_keys = {f"callastar-payout-{payout.pk}" for payout in payouts}
    assert fake.creations_by_key() == dict.fromkeys(expected_keys, 1)
    rows = Payout.objects.filter(pk__in=[p.pk for p in payouts])
    assert set(rows.values_list("status", flat=True)) == {Status.PROCESSING}
    assert len(set(rows.values_list("stripe_payout_id", flat=True))) == 50


def test_it_fails_the_run_when_stripe_rejects_the_key_without_revealing_it(
    funded_creator, make_payout, stripe_fake
):
    payout = make_payout(creator=funded_creator())
    stripe_fake.fail_next(
        "GET",
        r"^/v1/accounts/",
        status=401,
        error={
            "type": "invalid_request_error",
            "message": f"Invalid API Key {stripe_fake.api_key}",
        },
    )
    out = StringIO()

    with pytest.raises(CommandError) as caught:
        call_command("process_payouts", stdout=out)

    # It should stop the run (CRON_ERROR), leave the payout APPROVED and mask the key.
    payout.refresh_from_db()
    assert payout.status == Status.APPROVED and stripe_fake.payout_posts() == []
    row = Log.objects.get(type="CRON_ERROR")
    assert "Stripe authentication 401" in row.context["error"]
    for text in (
        str(caught.value),
        out.getvalue(),
        row.message,
        row.error,
        json.dumps(row.context),
    ):
        assert stripe_fake.api_key not in text


def test_it_keeps_the_key_out_of_a_declined_payouts_reason_and_log(
    funded_creator, make_payout, stripe_fake
):
    payout = make_payout(creator=funded_creator())
    stripe_fake.decline_next_payout(
        f"Request made with {stripe_fake.api_key} was invalid", code="parameter_invalid"
    )

    run(timezone.now())

    payout.refresh_from_db()
    assert payout.status == Status.FAILED and "[REDACTED]" in payout.failure_reason
    row = Log.objects.get(type="PAYOUT_ERROR")
    assert stripe_fake.api_key not in row.message + row.error + json.dumps(row.context)
