"""`manage.py cron_status`, the schedule helpers and the crontab wiring."""

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from cronlogs.jobs import JOBS
from cronlogs.models import Log
from cronlogs.schedule import describe_schedule, last_due, missed_since, next_run
from cronlogs.status import job_is_running, job_status
from tests.conftest import record_run
from tests.processes import held_job_lock, run_manage

pytestmark = pytest.mark.django_db


def record_all_on_time():
    for job in JOBS:
        record_run(job, ago=timedelta(minutes=1))


def test_it_describes_the_default_schedules_in_words():
    assert describe_schedule("*/5 * * * *") == "Every 5 minutes"
    assert describe_schedule("0 * * * *") == "Every hour"
    assert describe_schedule("0 3 * * *") == "At 03:00 UTC"
    assert describe_schedule("0 1 * * *") == "At 01:00 UTC"


def test_it_computes_the_next_and_last_scheduled_times():
    moment = datetime(2026, 3, 1, 12, 3, 20, tzinfo=UTC)

    assert next_run("*/5 * * * *", after=moment) == datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
    assert next_run("0 3 * * *", after=moment) == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    assert last_due("*/5 * * * *", now=moment) == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    # A scheduled time that is exactly now is the last one due.
    exact = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert last_due("*/5 * * * *", now=exact) == exact


def test_it_gives_a_run_its_grace_period_before_calling_it_missed():
    now = datetime(2026, 3, 1, 12, 7, tzinfo=UTC)
    grace = timedelta(minutes=10)

    # It should not count the 12:00 run as missed until 12:10 (grace), then flag it.
    started = datetime(2026, 3, 1, 11, 55, 1, tzinfo=UTC)
    assert missed_since("*/5 * * * *", last_started=started, now=now, grace=grace) is None
    later = now + timedelta(minutes=5)
    assert missed_since("*/5 * * * *", last_started=started, now=later, grace=grace) == datetime(
        2026, 3, 1, 12, 0, tzinfo=UTC
    )


def test_it_prints_a_table_and_exits_zero_when_all_is_well():
    record_all_on_time()
    out = StringIO()

    call_command("cron_status", stdout=out)

    # It should show a line per job, with the schedule in words and the last run's numbers.
    text = out.getvalue()
    for job in JOBS:
        assert job in text
    line = next(line for line in text.splitlines() if line.startswith("send-booking-reminders"))
    assert "*/5 * * * *" in line and "Every 5 minutes" in line
    assert "success" in line and "2.50s" in line and " ok " in line
    # It should head every column, the state first after the job.
    assert text.splitlines()[0].split()[:2] == ["job", "state"]


def test_it_exits_non_zero_when_the_last_run_failed():
    record_all_on_time()
    record_run("process-payouts", ago=timedelta(seconds=10), failed=True)
    out = StringIO()

    # It should name the job and its error, and mark it in the table.
    with pytest.raises(CommandError, match=r"process-payouts: last run failed: RuntimeError"):
        call_command("cron_status", stdout=out)
    line = next(line for line in out.getvalue().splitlines() if line.startswith("process-payouts"))
    assert "failing (!)" in line


def test_it_exits_non_zero_when_a_job_missed_its_schedule():
    record_all_on_time()
    Log.objects.for_job("cleanup-logs").update(
        created_at=timezone.now() - timedelta(days=3),
        context={"cronType": "cleanup-logs", "itemsProcessed": 0},
    )

    with pytest.raises(CommandError, match=r"cleanup-logs: missed its run due at"):
        call_command("cron_status", stdout=StringIO())


def test_it_calls_a_job_that_never_ran_overdue_only_once_a_run_was_due():
    # The crontab started (first recorded run) 30 minutes ago; cleanup-logs runs daily.
    record_run("send-booking-reminders", ago=timedelta(minutes=30))
    record_run("send-booking-reminders", ago=timedelta(minutes=1))

    cleanup = job_status(JOBS["cleanup-logs"])
    reminders = job_status(JOBS["send-booking-reminders"])
    assert (cleanup.last_status, cleanup.overdue) == ("never run", False)
    assert (reminders.last_status, reminders.overdue) == ("success", False)

    # It should call the never-run job overdue once a scheduled run passed unrun.
    Log.objects.update(created_at=timezone.now() - timedelta(days=2))
    assert job_status(JOBS["cleanup-logs"]).problems == ["never run"]


def test_it_prints_json():
    record_all_on_time()
    out = StringIO()

    call_command("cron_status", "--json", stdout=out)

    jobs = {job["cronType"]: job for job in json.loads(out.getvalue())}
    assert set(jobs) == set(JOBS)
    reminders = jobs["send-booking-reminders"]
    assert reminders["schedule"] == "*/5 * * * *"
    assert reminders["lastRun"]["status"] == "success"
    assert reminders["lastRun"]["itemsProcessed"] == 4
    assert reminders["lastRun"]["duration"] == 2500
    assert reminders["overdue"] is False and reminders["healthy"] is True
    assert reminders["nextRun"].endswith("Z")


@pytest.mark.django_db(transaction=True)
def test_it_exits_1_from_manage_py_when_unhealthy(subprocess_env):
    record_all_on_time()
    record_run("cleanup-daily-rooms", ago=timedelta(seconds=5), failed=True)

    finished = run_manage(["cron_status"], subprocess_env)

    assert finished.returncode == 1
    assert "cleanup-daily-rooms: last run failed" in finished.stderr
    assert "cleanup-daily-rooms" in finished.stdout


@pytest.mark.postgres_only
def test_it_sees_a_run_in_progress_without_taking_the_lock():
    with held_job_lock("process-payouts"):
        assert job_is_running("process-payouts") is True
        assert job_is_running("cleanup-logs") is False
    assert job_is_running("process-payouts") is False


def test_it_builds_the_crontab_from_the_registry(subprocess_env):
    # It should give django-crontab one line per job, through the shared runner.
    assert sorted(django_settings.CRONJOBS) == sorted(
        (job.default_schedule, "cronlogs.crontab.run_scheduled_job", [job.name])
        for job in JOBS.values()
    )

    # It should honour an overridden schedule, and `crontab show` should work.
    env = {**subprocess_env, "CRON_SCHEDULE_SEND_BOOKING_REMINDERS": "*/2 * * * *"}
    shown = run_manage(
        ["shell", "-c", "from django.conf import settings; print(settings.CRONJOBS)"], env
    )
    assert "('*/2 * * * *', 'cronlogs.crontab.run_scheduled_job', ['send-booking-reminders'])" in (
        shown.stdout
    )
    assert run_manage(["crontab", "show"], env).returncode == 0
