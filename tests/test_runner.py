"""The shared job runner: log rows, exit codes, alerts, dry runs, secrets."""

import json
import smtplib
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from cronlogs import alerts
from cronlogs.jobs import JOBS
from cronlogs.models import Log
from cronlogs.runner import RunStatus, run_job
from cronlogs.status import State, job_status
from tests.conftest import job_command
from tests.processes import held_job_lock

pytestmark = pytest.mark.django_db


def test_it_writes_one_cron_run_row_with_the_contracted_context(fake_job):
    result = run_job("fake-job", trigger="cli")

    # It should write exactly one CRON_RUN row with timing, counts, trigger and the stats.
    assert result.status == RunStatus.SUCCESS
    row = Log.objects.get(type="CRON_RUN")
    assert (row.type, row.status, row.level) == ("CRON_RUN", "SUCCESS", "INFO")
    assert row.message.startswith("Cron job completed: fake-job (processed 3 items in ")
    for key in (
        "cronType",
        "itemsProcessed",
        "duration",
        "durationSeconds",
        "startTime",
        "endTime",
        "trigger",
    ):
        assert key in row.context
    assert row.context["cronType"] == "fake-job"
    assert row.context["itemsProcessed"] == 3
    assert row.context["trigger"] == "cli"
    assert row.context["widgets"] == 3
    assert row.context["durationSeconds"] == pytest.approx(row.context["duration"] / 1000)
    assert row.context["startTime"].endswith("Z") and row.context["endTime"].endswith("Z")


def test_it_writes_one_cron_error_row_with_the_traceback_and_partial_stats(fake_job):
    fake_job["error"] = RuntimeError("Database transaction failed")
    fake_job["items"] = 10

    result = run_job("fake-job")

    # It should record the failure once, with the traceback and what was done before it.
    assert result.failed
    row = Log.objects.get(type="CRON_ERROR")
    assert (row.type, row.status, row.level) == ("CRON_ERROR", "ERROR", "ERROR")
    assert "Traceback (most recent call last)" in row.error
    assert "Database transaction failed" in row.error
    assert row.context["error"] == "RuntimeError: Database transaction failed"
    assert row.context["itemsProcessed"] == 10
    assert row.context["widgets"] == 3
    assert "duration" in row.context and "durationSeconds" in row.context


def test_it_makes_the_command_exit_non_zero_on_failure(fake_job, monkeypatch):
    fake_job["error"] = ValueError("boom")
    command = job_command("fake-job")
    out = StringIO()

    # It should raise CommandError (exit 1 from manage.py) naming the job and the log row.
    with pytest.raises(CommandError, match=r"fake-job failed: ValueError: boom \(see Log #\d+\)"):
        call_command(command, stdout=out)
    assert "FAILED" in out.getvalue()


def test_it_emails_admins_on_the_change_of_state_only(fake_job, settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    run_job("fake-job")
    assert len(mail.outbox) == 0

    # It should alert on the first failure after a success...
    fake_job["error"] = RuntimeError("Stripe API error")
    run_job("fake-job")
    assert len(mail.outbox) == 1
    assert "fake-job is failing" in mail.outbox[0].subject
    assert mail.outbox[0].to == ["ops@example.com"]

    # ...not on the second failure in a row...
    run_job("fake-job")
    assert len(mail.outbox) == 1

    # ...and once more when the job recovers.
    fake_job["error"] = None
    run_job("fake-job")
    assert len(mail.outbox) == 2
    assert "fake-job has recovered" in mail.outbox[1].subject
    run_job("fake-job")
    assert len(mail.outbox) == 2


def test_it_keeps_an_alert_it_could_not_send_owed_and_logs_why(fake_job, settings, monkeypatch):
    settings.ADMINS = [("Ops", "ops@example.com")]
    fake_job["error"] = RuntimeError("Stripe API error")

    def smtp_down(*args, **kwargs):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    with monkeypatch.context() as patch:
        patch.setattr(alerts, "mail_admins", smtp_down)
        run_job("fake-job")

    # It should say so in a log row, and not count ADMINS as told.
    row = Log.objects.get(type="EMAIL_ERROR")
    assert row.level == "ERROR" and row.context["emailType"] == "cron_alert"
    assert "fake-job is failing" in row.message and "Connection unexpectedly closed" in row.message
    assert mail.outbox == []

    # It should send the alert on the next run, once the mail server is back.
    run_job("fake-job")
    assert [message.subject for message in mail.outbox] == [
        "[Call a Star] Cron job fake-job is failing"
    ]


def test_a_staff_action_on_one_item_does_not_change_the_jobs_state(fake_job, settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    fake_job["error"] = RuntimeError("Stripe API error")
    run_job("fake-job")
    assert [message.subject for message in mail.outbox] == [
        "[Call a Star] Cron job fake-job is failing"
    ]

    def one_payout(run):
        run.stats["itemsProcessed"] = 1

    result = run_job("fake-job", trigger="admin", triggered_by="ops@example.com", task=one_payout)

    # It should log the action as a partial run, and keep the job failing: one payout
    # paid by hand says nothing of whether the job's own runs work.
    assert result.status == RunStatus.SUCCESS
    assert Log.objects.get(pk=result.log_id).context["partialRun"] is True
    assert job_status(JOBS["fake-job"]).state == State.FAILING
    assert len(mail.outbox) == 1

    # A full run is what recovers it.
    fake_job["error"] = None
    run_job("fake-job", trigger="admin", triggered_by="ops@example.com")
    assert job_status(JOBS["fake-job"]).state == State.OK
    assert "fake-job has recovered" in mail.outbox[-1].subject


def test_it_alerts_on_a_first_ever_run_that_fails(fake_job, settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    fake_job["error"] = RuntimeError("no luck")

    run_job("fake-job")

    assert [message.subject for message in mail.outbox] == [
        "[Call a Star] Cron job fake-job is failing"
    ]


def test_it_writes_nothing_on_a_dry_run(fake_job):
    result = run_job("fake-job", dry_run=True)

    # It should report the stats and leave the database untouched.
    assert result.status == RunStatus.DRY_RUN
    assert result.items_processed == 3
    assert result.stats == {"widgets": 3}
    assert not Log.objects.exists()


def test_it_skips_when_the_job_is_already_running(fake_job):
    with held_job_lock("fake-job"):
        result = run_job("fake-job")

    # It should do nothing but record a CRON_SKIPPED warning.
    assert result.status == RunStatus.SKIPPED
    assert fake_job["runs"] == 0
    row = Log.objects.get()
    assert (row.type, row.status, row.level) == ("CRON_SKIPPED", "SUCCESS", "WARNING")
    assert row.context["cronType"] == "fake-job"


def test_it_prints_the_result_as_json(fake_job):
    command = job_command("fake-job")
    out = StringIO()
    call_command(command, "--json", stdout=out)

    result = json.loads(out.getvalue())
    assert result["success"] is True
    assert result["cronType"] == "fake-job"
    assert result["itemsProcessed"] == 3
    assert result["stats"] == {"widgets": 3}
    assert result["logId"] == Log.objects.get(type="CRON_RUN").pk


def test_it_keeps_secrets_out_of_log_rows(fake_job, settings):
    settings.CRON_SECRET = "cron-secret-value-123"
    settings.STRIPE_SECRET_KEY = "sk_test_abcdefghijklmnop"
    settings.DAILY_API_KEY = "daily-key-0123456789"
    fake_job["error"] = RuntimeError(
        "request failed: Authorization: Bearer daily-key-0123456789 "
        "with sk_test_abcdefghijklmnop and cron-secret-value-123"
    )
    fake_job["stats"] = {"apiKey": "whatever", "headers": {"Authorization": "Bearer xyz"}}

    result = run_job("fake-job")

    # It should mask every secret in the row and in what it returns.
    row = Log.objects.get(type="CRON_ERROR")
    stored = json.dumps([row.message, row.context, row.error])
    for secret in ("cron-secret-value-123", "sk_test_abcdefghijklmnop", "daily-key-0123456789"):
        assert secret not in stored
        assert secret not in result.error
    assert row.context["apiKey"] == "[REDACTED]"
    assert row.context["headers"]["Authorization"] == "[REDACTED]"


def test_it_rejects_an_unknown_job_and_trigger(fake_job):
    with pytest.raises(KeyError, match="Unknown job 'no-such-job'"):
        run_job("no-such-job")
    with pytest.raises(ValueError, match="trigger must be one of"):
        run_job("fake-job", trigger="carrier-pigeon")
    assert not Log.objects.exists()
