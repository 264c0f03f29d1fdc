"""A run's outcome tells the truth: success, degraded or failed (SPEC §9)."""

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
import requests
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone

from bookings.models import Booking
from cronlogs.models import Log
from cronlogs.runner import RunStatus, run_job
from cronlogs.work import ItemOutcome
from tests.conftest import DAILY_TEST_API_URL, record_run

pytestmark = pytest.mark.django_db

ANY_DAILY_URL = re.compile(re.escape(f"{DAILY_TEST_API_URL}/") + ".*")


@pytest.fixture
def rooms(make_booking):
    def make(*names):
        return [
            make_booking(
                status=Booking.Status.COMPLETED,
                starts_at=timezone.now() - timedelta(days=1),
                daily_room_name=name,
                daily_room_url=f"https://callastar.daily.co/{name}",
            )
            for name in names
        ]

    return make


def test_it_fails_the_run_when_daily_refuses_the_key(mocked_daily, rooms, client, settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    rooms("room-1", "room-2", "room-3", "room-4")
    mocked_daily.delete(ANY_DAILY_URL, status=401, json={"error": "authentication-error"})
    # The job was failing before, so a success would be a "recovery".
    record_run("cleanup-daily-rooms", ago=timedelta(hours=1), failed=True)
    mail.outbox.clear()
    out = StringIO()

    with pytest.raises(CommandError, match="Daily authentication 401"):
        call_command("cleanup_daily_rooms", stdout=out)

    # It should stop at the first refusal, record CRON_ERROR and keep every room.
    assert len(mocked_daily.calls) == 1
    row = Log.objects.filter(type="CRON_ERROR").latest("created_at")
    assert row.context["outcome"] == "error"
    assert Booking.objects.exclude(daily_room_name=None).count() == 4
    assert "FAILED" in out.getvalue()
    # ...health should say so, and nobody should be told the job recovered.
    assert client.get("/api/cron/health").status_code == 503
    assert not [m for m in mail.outbox if "recovered" in m.subject]


def test_it_fails_the_run_when_every_payout_meets_an_unreachable_stripe(
    make_creator, make_payout, stripe_fake
):
    payouts = [make_payout(creator=make_creator()) for _ in range(3)]
    stripe_fake.fail_next("GET", r"^/v1/accounts/", status=503, times=100)

    result = run_job("process-payouts")

    # It should end failed: every attempted payout failed for a provider reason.
    assert result.status == RunStatus.ERROR
    assert (result.items_attempted, result.items_failed) == (3, 3)
    assert "every attempted item failed (3 of 3)" in result.error
    assert "Stripe unavailable 503" in result.error
    row = Log.objects.get(pk=result.log_id)
    assert (row.type, row.context["outcome"], row.context["itemsFailed"]) == (
        "CRON_ERROR",
        "error",
        3,
    )
    # ...and leave every payout as it was, for the next run.
    assert {payout.status for payout in payouts} == {"APPROVED"}
    assert stripe_fake.payout_posts() == []


def test_it_fails_the_automatic_run_when_stripe_is_unreachable(make_creator, stripe_fake):
    make_creator(payout_schedule="DAILY")
    make_creator(payout_schedule="WEEKLY")
    stripe_fake.fail_next("GET", r"^/v1/accounts/", status=500, times=100)

    result = run_job("process-automatic-payouts")

    assert result.status == RunStatus.ERROR
    assert (result.items_attempted, result.items_failed) == (2, 2)


def test_it_is_degraded_when_some_rooms_fail_and_others_are_deleted(daily_fake, rooms):
    rooms("room-a", "room-b", "room-c")
    daily_fake.add_rooms("room-a", "room-b", "room-c")
    daily_fake.fail_room("room-b", status=500)
    out = StringIO()

    call_command("cleanup_daily_rooms", "--json", stdout=out)

    # It should exit 0 with a WARNING CRON_RUN that says degraded and how many failed.
    result = json.loads(out.getvalue())
    assert result["status"] == "degraded" and result["success"] is True
    row = Log.objects.get(type="CRON_RUN")
    assert row.level == "WARNING"
    assert (row.context["outcome"], row.context["itemsFailed"]) == ("degraded", 1)
    assert row.context["itemsAttempted"] == 3


def test_it_counts_an_items_own_refusal_as_no_fault_of_the_run(fake_job):
    fake_job["outcomes"] = [(ItemOutcome.REFUSED, "550 no such user")] * 3

    result = run_job("fake-job")

    # It should succeed: a refused address is the recipient's business, not the run's.
    assert result.status == RunStatus.SUCCESS
    assert Log.objects.get(type="CRON_RUN").context["outcome"] == "success"


def test_it_fails_only_when_every_attempted_item_failed(fake_job):
    fake_job["outcomes"] = [(ItemOutcome.FAILED, "timeout"), (ItemOutcome.SKIPPED, None)]

    failed = run_job("fake-job")
    fake_job["outcomes"] = [(ItemOutcome.FAILED, "timeout"), (ItemOutcome.REFUSED, "bad")]
    degraded = run_job("fake-job")
    fake_job["outcomes"] = [(ItemOutcome.SKIPPED, None)]
    nothing_attempted = run_job("fake-job")

    # It should not count a skipped item as attempted, and call a mixed run degraded.
    assert failed.status == RunStatus.ERROR and "the first: timeout" in failed.error
    assert degraded.status == RunStatus.DEGRADED
    assert nothing_attempted.status == RunStatus.SUCCESS


def test_it_emails_recovered_only_after_a_run_that_did_not_fail(fake_job, settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    fake_job["outcomes"] = [(ItemOutcome.FAILED, "timeout")]
    run_job("fake-job")
    fake_job["outcomes"] = [(ItemOutcome.FAILED, "timeout"), (ItemOutcome.DONE, None)]
    run_job("fake-job")

    # It should tell of the failure, then of the recovery by a degraded (not failed) run.
    assert [m.subject for m in mail.outbox] == [
        "[Call a Star] Cron job fake-job is failing",
        "[Call a Star] Cron job fake-job has recovered",
    ]


def test_it_fails_the_reminder_run_when_the_smtp_server_is_unreachable(
    make_booking, smtp_settings, settings
):
    make_booking(starts_at=timezone.now() + timedelta(minutes=10))
    settings.EMAIL_PORT = 1

    result = run_job("send-booking-reminders")

    assert result.status == RunStatus.ERROR
    assert "SMTP server unavailable" in result.error


def test_it_keeps_a_provider_timeout_a_failure_of_the_run(mocked_daily, rooms):
    rooms("room-slow")
    mocked_daily.delete(ANY_DAILY_URL, body=requests.exceptions.ReadTimeout("timed out"))

    result = run_job("cleanup-daily-rooms")

    assert result.status == RunStatus.ERROR
    assert "timed out" in result.error
