"""cleanup-logs: per-level retention, in batches, once at a time."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from cronlogs.logger import write_log
from cronlogs.models import Log
from cronlogs.retention import cleanup_logs
from tests.conftest import job_run
from tests.processes import race, start_manage

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def make_log(level, age, type=Log.Type.EMAIL_SENT):
    row = write_log(type=type, status="SUCCESS", level=level, message=f"{level} {age}")
    Log.objects.filter(pk=row.pk).update(created_at=NOW - age)
    return row.pk


def run_cleanup(**kwargs):
    run = job_run(NOW)
    cleanup_logs(run, **kwargs)
    return run.stats


@pytest.mark.parametrize("level, days", [("INFO", 30), ("WARNING", 60), ("ERROR", 90)])
def test_it_deletes_exactly_at_the_retention_boundary(level, days):
    inside = make_log(level, timedelta(days=days) - timedelta(seconds=1))
    outside = make_log(level, timedelta(days=days) + timedelta(seconds=1))

    stats = run_cleanup()

    # It should keep the row one second inside its retention and delete the one outside.
    assert Log.objects.filter(pk=inside).exists()
    assert not Log.objects.filter(pk=outside).exists()
    assert stats[f"{level.lower()}Deleted"] == 1
    assert stats["itemsProcessed"] == 1


@pytest.mark.parametrize("microseconds", [0, 250_000])
@pytest.mark.parametrize("level, days", [("INFO", 30), ("WARNING", 60), ("ERROR", 90)])
def test_it_keeps_a_row_exactly_at_its_cut_off_on_every_engine(level, days, microseconds):
    now = NOW + timedelta(microseconds=microseconds)
    at_cut_off = make_log(level, timedelta(days=days) - timedelta(microseconds=microseconds))
    Log.objects.filter(pk=at_cut_off).update(created_at=now - timedelta(days=days))
    just_older = make_log(
        level, timedelta(days=days, microseconds=1) - timedelta(microseconds=microseconds)
    )
    Log.objects.filter(pk=just_older).update(created_at=now - timedelta(days=days, microseconds=1))
    run = job_run(now)

    cleanup_logs(run)

    # It should compare as the database stores times (SQLite compares text): a row exactly
    # at the cut-off stays, one a microsecond older goes, and the count agrees.
    assert Log.objects.filter(pk=at_cut_off).exists()
    assert not Log.objects.filter(pk=just_older).exists()
    assert run.stats[f"{level.lower()}Deleted"] == 1


def test_it_never_deletes_critical_rows():
    ancient = make_log("CRITICAL", timedelta(days=3650))

    stats = run_cleanup()

    assert Log.objects.filter(pk=ancient).exists()
    assert stats["retentionPolicy"]["CRITICAL"] == "kept"
    assert stats["itemsProcessed"] == 0


def test_it_reports_each_level_and_the_policy():
    for _ in range(3):
        make_log("INFO", timedelta(days=31))
    make_log("WARNING", timedelta(days=61))
    make_log("ERROR", timedelta(days=91))
    make_log("ERROR", timedelta(days=89))

    stats = run_cleanup()

    assert stats == {
        "retentionPolicy": {
            "INFO": "30 days",
            "WARNING": "60 days",
            "ERROR": "90 days",
            "CRITICAL": "kept",
        },
        "itemsProcessed": 5,
        "infoDeleted": 3,
        "warningDeleted": 1,
        "errorDeleted": 1,
    }
    assert Log.objects.count() == 1


def test_it_deletes_in_bounded_batches_until_nothing_is_left():
    for _ in range(7):
        make_log("INFO", timedelta(days=40))
    kept = make_log("INFO", timedelta(days=1))

    stats = run_cleanup(batch_size=3)

    # It should walk the table in ranges of three ids and leave the recent row alone.
    assert stats["infoDeleted"] == 7
    assert list(Log.objects.values_list("pk", flat=True)) == [kept]


def test_it_follows_retention_settings(settings):
    settings.LOG_RETENTION_DAYS = {"INFO": 7, "WARNING": 60, "ERROR": 90}
    eight_days = make_log("INFO", timedelta(days=8))

    stats = run_cleanup()

    assert not Log.objects.filter(pk=eight_days).exists()
    assert stats["retentionPolicy"]["INFO"] == "7 days"


def test_it_refuses_a_retention_of_zero_days(settings):
    settings.LOG_RETENTION_DAYS = {"INFO": 0, "WARNING": 60, "ERROR": 90}
    make_log("INFO", timedelta(hours=1))

    with pytest.raises(ValueError, match="at least 1 day"):
        run_cleanup()
    assert Log.objects.count() == 1


def test_it_works_on_an_empty_table():
    stats = run_cleanup()

    assert stats["itemsProcessed"] == 0
    assert (stats["infoDeleted"], stats["warningDeleted"], stats["errorDeleted"]) == (0, 0, 0)


def test_it_counts_without_deleting_on_a_dry_run():
    make_log("INFO", timedelta(days=31))
    run = job_run(NOW, dry_run=True)

    cleanup_logs(run)

    assert run.stats["infoDeleted"] == 1
    assert Log.objects.count() == 1


def test_it_runs_as_a_command_and_logs_the_run():
    make_log("WARNING", timedelta(days=365))
    out = StringIO()

    call_command("cleanup_logs", "--json", stdout=out)

    # It should delete the old row and leave exactly one CRON_RUN row describing the run.
    result = json.loads(out.getvalue())
    assert result["success"] is True
    assert result["itemsProcessed"] == 1
    run = Log.objects.exclude(type="CRON_STARTED").get()
    assert run.type == "CRON_RUN"
    assert run.context["cronType"] == "cleanup-logs"
    assert run.context["warningDeleted"] == 1
    assert run.context["trigger"] == "cli"
    assert run.message.startswith("Cron job completed: cleanup-logs (processed 1 items in ")


def test_it_prints_a_human_summary():
    out = StringIO()
    call_command("cleanup_logs", stdout=out)

    assert out.getvalue().startswith("cleanup-logs: done; processed 0 items in ")
    assert len(out.getvalue().splitlines()) == 1


SLOW_CHILD = """
import time
import django
django.setup()
from cronlogs import retention
from tests.processes import wait_for_start_signal
original = retention.delete_expired_range
def slow_batch(*args, **kwargs):
    time.sleep(1.5)  # hold the job's lock long enough for the other process to meet it
    return original(*args, **kwargs)
retention.delete_expired_range = slow_batch
wait_for_start_signal()
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "cleanup_logs", "--json"])
"""


@pytest.mark.django_db(transaction=True)
def test_it_runs_once_when_two_processes_start_at_the_same_moment(subprocess_env, tmp_path):
    make_log("INFO", timedelta(days=45))

    outcomes = race(SLOW_CHILD, [subprocess_env, subprocess_env], tmp_path)

    # It should let one process run and make the other record CRON_SKIPPED; both exit 0.
    assert [returncode for returncode, _, _ in outcomes] == [0, 0], outcomes
    statuses = sorted(json.loads(stdout)["status"] for _, stdout, _ in outcomes)
    assert statuses == ["skipped", "success"]
    assert sorted(Log.objects.values_list("type", flat=True)) == [
        "CRON_RUN",
        "CRON_SKIPPED",
        "CRON_STARTED",
    ]
    assert Log.objects.get(type="CRON_RUN").context["infoDeleted"] == 1
    skipped = Log.objects.get(type="CRON_SKIPPED")
    assert (skipped.level, skipped.context["cronType"]) == ("WARNING", "cleanup-logs")


def test_it_exits_non_zero_with_a_readable_message_when_the_database_is_down(subprocess_env):
    env = {**subprocess_env, "DATABASE_URL": "postgres://postgres@127.0.0.1:1/callastar"}

    child = start_manage(["cleanup_logs"], env)
    stdout, stderr = child.communicate(timeout=60)

    # It should fail loudly but readably: one line naming the problem, no traceback wall.
    assert child.returncode != 0
    assert "cleanup-logs: database unavailable, the run was not recorded" in stderr
    assert "Traceback" not in stderr


def test_it_keeps_the_payout_audit_trail_whatever_its_age():
    audit = make_log("INFO", timedelta(days=400), type=Log.Type.PAYOUT_AUDIT)
    expired = make_log("INFO", timedelta(days=400))

    stats = run_cleanup()

    # It should delete the old email row and keep the audit row, and count only the first.
    assert Log.objects.filter(pk=audit).exists()
    assert not Log.objects.filter(pk=expired).exists()
    assert stats["infoDeleted"] == 1 == stats["itemsProcessed"]
