"""Stuck and interrupted runs are visible: in health, cron_status and one email each."""

import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO

import psycopg
import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from cronlogs import retention
from cronlogs.jobs import JOBS
from cronlogs.logger import write_log
from cronlogs.models import Log
from cronlogs.runner import run_job
from cronlogs.status import job_is_running, job_status
from tests.conftest import CRON_TEST_SECRET
from tests.processes import PROJECT_DIR, start_manage

SLOW_CLEANUP = """
import time
import django
django.setup()
from cronlogs import retention
def stuck_batch(*args, **kwargs):
    time.sleep(120)
retention.delete_expired_range = stuck_batch
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "cleanup_logs"])
"""


def expired_row():
    row = write_log(type="EMAIL_SENT", status="SUCCESS", level="INFO", message="old")
    Log.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(days=45))
    return row


def wait_until(condition, timeout=30, what="the condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def started():
    return Log.objects.filter(type="CRON_STARTED").exists()


def health(client):
    return client.get("/api/cron/health", headers={"X-Cron-Secret": CRON_TEST_SECRET})


@pytest.fixture
def admins(settings, cron_secret):
    settings.ADMINS = [("Ops", "ops@example.com")]
    return settings


def job_in(response, name):
    return next(job for job in response.json()["jobs"] if job["cronType"] == name)


@pytest.mark.django_db(transaction=True)
def test_it_reports_a_killed_run_as_interrupted_until_a_good_run(client, admins, subprocess_env):
    expired_row()
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_CLEANUP], env=subprocess_env, cwd=PROJECT_DIR
    )
    try:
        wait_until(started, what="the run to start")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    # The database lets go of the killed session's lock once it sees it gone.
    wait_until(lambda: job_is_running("cleanup-logs") is False, what="the lock to go")

    # It should call the job interrupted (unhealthy) and say where the run was.
    first = health(client)
    second = health(client)
    assert first.status_code == second.status_code == 503
    job = job_in(first, "cleanup-logs")
    assert job["state"] == "interrupted" and job["healthy"] is False
    assert job["currentRun"]["pid"] == child.pid
    assert job["currentRun"]["host"] == socket.gethostname()
    assert job["problems"][0].startswith("interrupted: the run started ")
    # ...email ADMINS once, however often it is looked at...
    assert [m.subject for m in mail.outbox] == [
        "[Call a Star] Cron job cleanup-logs was interrupted"
    ]
    with pytest.raises(CommandError, match="cleanup-logs: interrupted"):
        call_command("cron_status", stdout=StringIO())
    assert len(mail.outbox) == 1

    # ...until the next run goes well.
    assert run_job("cleanup-logs").status == "success"
    assert job_in(health(client), "cleanup-logs")["state"] == "ok"
    assert [m.subject for m in mail.outbox][1:] == [
        "[Call a Star] Cron job cleanup-logs has recovered"
    ]


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_it_reports_a_run_blocked_past_its_max_runtime_as_stuck(client, admins, subprocess_env):
    row = expired_row()
    env = {
        **subprocess_env,
        "CRON_MAX_RUNTIME_CLEANUP_LOGS": "0.03",  # 1.8 seconds
        "ADMINS": "Ops <ops@example.com>",
        "EMAIL_URL": "consolemail://",
    }
    params = connection.get_connection_params()
    holder = psycopg.connect(
        **{key: params[key] for key in ("dbname", "user", "host", "port") if key in params}
    )
    child = None
    try:
        # Another connection holds the row the cleanup is about to delete.
        holder.execute('SELECT id FROM "Log" WHERE id = %s FOR UPDATE', [row.pk])
        child = start_manage(["cleanup_logs", "--json"], env)
        wait_until(started, what="the run to start")
        wait_until(
            lambda: job_status(JOBS["cleanup-logs"]).stuck, what="the run to pass its max runtime"
        )

        # It should report stuck (503) with where the run is and since when, email once.
        blocked = health(client)
        health(client)
        assert blocked.status_code == 503
        job = job_in(blocked, "cleanup-logs")
        assert job["state"] == "stuck" and job["running"] is True
        assert job["currentRun"]["pid"] == child.pid
        assert job["currentRun"]["host"] == socket.gethostname()
        assert "past its max runtime of 0.03 min" in job["problems"][0]
        assert [m.subject for m in mail.outbox] == ["[Call a Star] Cron job cleanup-logs is stuck"]
    finally:
        holder.rollback()
        holder.close()
    stdout, stderr = child.communicate(timeout=60)

    # Once the lock is released the run should finish its last batch and the job recover.
    assert child.returncode == 0, stderr
    assert not Log.objects.filter(pk=row.pk).exists()
    recovered = health(client)
    assert job_in(recovered, "cleanup-logs")["state"] == "ok"
    # (The run itself told ADMINS, from its own process: its console backend shows it.)
    assert "Subject: [Call a Star] Cron job cleanup-logs has recovered" in stdout
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_it_stops_taking_items_past_the_max_runtime_and_fails(settings, monkeypatch):
    # 600 ms: ample for the run to start and take its first batch on a loaded machine,
    # far short of five batches of 300 ms.
    settings.CRON_MAX_RUNTIME_CLEANUP_LOGS = "0.01"
    settings.LOG_RETENTION_BATCH_SIZE = 1
    for _ in range(5):
        expired_row()
    original = retention.delete_expired_range

    def slow_batch(*args, **kwargs):
        deleted = original(*args, **kwargs)
        time.sleep(0.3)
        return deleted

    monkeypatch.setattr(retention, "delete_expired_range", slow_batch)

    result = run_job("cleanup-logs")

    # It should record what it did and end failed, saying it ran out of time.
    assert result.failed
    assert "exceeded its max runtime of 0.01 min (CRON_MAX_RUNTIME_CLEANUP_LOGS)" in result.error
    deleted = 5 - Log.objects.filter(type="EMAIL_SENT").count()
    assert 1 <= deleted < 5
    row = Log.objects.get(type="CRON_ERROR")
    assert row.context["itemsProcessed"] == deleted


@pytest.mark.django_db
def test_it_never_loops_on_a_batch_size_of_zero(settings):
    settings.LOG_RETENTION_BATCH_SIZE = 0
    expired_row()

    result = run_job("cleanup-logs")

    # It should refuse at once instead of spinning with the lock held.
    assert result.failed and "LOG_RETENTION_BATCH_SIZE" in result.error


@pytest.mark.django_db
def test_it_refuses_a_bad_max_runtime_naming_the_variable(settings):
    settings.CRON_MAX_RUNTIME_CLEANUP_LOGS = "soon"

    result = run_job("cleanup-logs")

    assert result.failed and result.error.startswith(
        "ImproperlyConfigured: CRON_MAX_RUNTIME_CLEANUP_LOGS='soon': expected a number of minutes"
    )
