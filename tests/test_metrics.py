"""GET /api/cron/metrics: the Prometheus scrape, parsed with the client's own parsers."""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from cronlogs import logger
from cronlogs.jobs import JOBS
from cronlogs.models import Log, RunCount
from cronlogs.pausing import pause_job, resume_job
from cronlogs.runner import RunStatus, run_job
from cronlogs.status import State
from cronlogs.work import ItemOutcome
from tests.conftest import CRON_TEST_SECRET, record_run

pytestmark = pytest.mark.django_db

BEARER = {"Authorization": f"Bearer {CRON_TEST_SECRET}"}


def scrape(client, headers=BEARER):
    response = client.get("/api/cron/metrics", headers=headers)
    assert response.status_code == 200, response.content
    return Samples(text_string_to_metric_families(response.content.decode()))


class Samples:
    """Every sample of a scrape, by name and labels."""

    def __init__(self, families):
        self.families = {}
        self.values = {}
        for family in families:
            self.families[family.name] = family.type
            for sample in family.samples:
                self.values[sample.name, frozenset(sample.labels.items())] = sample.value

    def get(self, name, **labels):
        return self.values.get((name, frozenset(labels.items())))

    def jobs_with(self, name):
        return {dict(labels)["job"] for sample, labels in self.values if sample == name}


def rows_of(job, type_, **context):
    rows = Log.objects.for_job(job).filter(type=type_)
    return [row for row in rows if all(row.context.get(k) == v for k, v in context.items())]


def test_it_refuses_a_scrape_without_the_right_secret(client, cron_secret):
    # It should answer 401 with no secret, a wrong one, or one in the query string.
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-Cron-Secret": "wrong"}):
        response = client.get("/api/cron/metrics", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert client.get(f"/api/cron/metrics?secret={CRON_TEST_SECRET}").status_code == 401
    # ...and serve both ways of presenting it.
    assert client.get("/api/cron/metrics", headers=BEARER).status_code == 200
    assert client.get("/api/cron/metrics", headers=cron_secret).status_code == 200


def test_it_fails_closed_without_a_cron_secret(client, settings):
    settings.CRON_SECRET = ""

    response = client.get("/api/cron/metrics", headers=BEARER)

    assert response.status_code == 503
    assert response.json()["error"] == "not_configured"


def test_it_serves_only_get(client, cron_secret):
    response = client.post("/api/cron/metrics", headers=BEARER)

    assert response.status_code == 405 and response["Allow"] == "GET"


def test_the_values_match_the_log_table_after_known_runs(client, cron_secret, fake_job):
    run_job("fake-job")
    fake_job["outcomes"] = [(ItemOutcome.DONE, None), (ItemOutcome.FAILED, "503")]
    run_job("fake-job")
    fake_job["error"] = RuntimeError("the widget press jammed")
    fake_job["items"] = 7
    failed = run_job("fake-job")
    pause_job("fake-job", by="ana", reason="maintenance")
    run_job("fake-job")
    resume_job("fake-job", by="ana")

    samples = scrape(client)

    # It should count runs per outcome as the Log table records them.
    expected = {
        "success": len(rows_of("fake-job", "CRON_RUN", outcome="success")),
        "degraded": len(rows_of("fake-job", "CRON_RUN", outcome="degraded")),
        "error": len(rows_of("fake-job", "CRON_ERROR")),
        "skipped": len(rows_of("fake-job", "CRON_SKIPPED")),
    }
    assert expected == {"success": 1, "degraded": 1, "error": 1, "skipped": 1}
    for outcome, count in expected.items():
        assert samples.get("callastar_cron_runs_total", job="fake-job", outcome=outcome) == count
    assert samples.families["callastar_cron_runs"] == "counter"
    # ...report the last run (the failure) and the last success (the degraded run)...
    error_row = Log.objects.get(pk=failed.log_id)
    degraded_row = rows_of("fake-job", "CRON_RUN", outcome="degraded")[0]
    job = {"job": "fake-job"}
    assert samples.get("callastar_cron_last_run_timestamp_seconds", **job) == pytest.approx(
        error_row.created_at.timestamp()
    )
    assert samples.get("callastar_cron_last_success_timestamp_seconds", **job) == pytest.approx(
        degraded_row.created_at.timestamp()
    )
    assert samples.get("callastar_cron_last_duration_seconds", **job) == pytest.approx(
        error_row.context["durationSeconds"]
    )
    assert samples.get("callastar_cron_last_items_processed", **job) == 7
    # ...its state (failing: unhealthy), one series per state, and that nothing runs.
    assert samples.get("callastar_cron_healthy", **job) == 0
    states = {
        state.value: samples.get("callastar_cron_state", state=state.value, **job)
        for state in State
    }
    assert states == {state.value: 1 if state == State.FAILING else 0 for state in State}
    assert samples.get("callastar_cron_running", **job) == 0
    assert samples.get("callastar_cron_period_seconds", **job) == 300
    # ...and the Log rows of the last hour by type, every type listed.
    for log_type in Log.Type.values:
        assert samples.get("callastar_log_rows_last_hour", type=log_type) == (
            Log.objects.filter(type=log_type).count()
        ), log_type


def test_every_job_has_its_series_and_a_job_that_never_ran_no_last_run(client, cron_secret):
    record_run("cleanup-logs", ago=timedelta(minutes=3), items=12, duration=1500)

    samples = scrape(client)

    # It should list every job of the registry in the series every job has...
    for name in ("healthy", "running", "period_seconds"):
        assert samples.jobs_with(f"callastar_cron_{name}") == set(JOBS), name
    assert samples.jobs_with("callastar_cron_runs_total") == set(JOBS)
    # ...and the last-run series only for the jobs that ran.
    assert samples.jobs_with("callastar_cron_last_run_timestamp_seconds") == {"cleanup-logs"}
    assert samples.get("callastar_cron_last_items_processed", job="cleanup-logs") == 12
    assert samples.get("callastar_cron_last_duration_seconds", job="cleanup-logs") == 1.5
    reminders = {"job": "send-booking-reminders"}
    assert samples.get("callastar_cron_state", state="never-run", **reminders) == 1
    assert samples.get("callastar_cron_period_seconds", job="cleanup-logs") == 86400


def test_it_shows_a_run_in_progress_as_running(client, cron_secret, fake_job):
    seen = []
    fake_job["during"] = lambda run: seen.append(scrape(client))

    run_job("fake-job")

    assert seen[0].get("callastar_cron_running", job="fake-job") == 1
    assert scrape(client).get("callastar_cron_running", job="fake-job") == 0


def test_retention_does_not_lower_the_run_counters(client, cron_secret, fake_job):
    run_job("fake-job")
    run_job("fake-job")

    Log.objects.all().delete()
    samples = scrape(client)

    # It should still count the two runs, though their rows are gone.
    assert samples.get("callastar_cron_runs_total", job="fake-job", outcome="success") == 2
    assert samples.get("callastar_cron_last_run_timestamp_seconds", job="fake-job") is None


def test_log_rows_older_than_an_hour_are_not_counted(client, cron_secret):
    old = logger.log_daily_room_deleted("room-1", 1)
    Log.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=61))
    logger.log_daily_room_deleted("room-2", 2)

    samples = scrape(client)

    assert samples.get("callastar_log_rows_last_hour", type="DAILY_ROOM_DELETED") == 1


def test_it_speaks_openmetrics_to_a_scraper_that_asks(client, cron_secret, fake_job):
    run_job("fake-job")
    headers = {**BEARER, "Accept": "application/openmetrics-text; version=1.0.0"}

    response = client.get("/api/cron/metrics", headers=headers)

    assert response["Content-Type"].startswith("application/openmetrics-text")
    families = {family.name: family for family in openmetrics_families(response.content.decode())}
    [success] = [
        sample
        for sample in families["callastar_cron_runs"].samples
        if sample.labels == {"job": "fake-job", "outcome": "success"}
    ]
    assert success.value == 1


def test_the_default_format_is_prometheus_text(client, cron_secret):
    response = client.get("/api/cron/metrics", headers=BEARER)

    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert response["Cache-Control"] == "no-store"


def test_the_migration_starts_the_counters_from_the_runs_already_logged():
    migration = importlib.import_module("cronlogs.migrations.0008_run_counts")
    for _ in range(3):
        record_run("cleanup-logs", ago=timedelta(hours=1))
    record_run("cleanup-logs", ago=timedelta(hours=1), outcome="degraded")
    record_run("process-payouts", ago=timedelta(hours=1), failed=True)
    logger.log_cron_skipped("process-payouts", "already running")
    logger.log_email_sent(1, 1, "booking_reminder_client", {"cronType": "cleanup-logs"})

    class SchemaEditor:
        pass

    editor = SchemaEditor()
    editor.connection = connection
    migration.count_the_runs_already_logged(apps, editor)

    totals = {(c.job, c.outcome): c.total for c in RunCount.objects.all()}
    assert totals == {
        ("cleanup-logs", "success"): 3,
        ("cleanup-logs", "degraded"): 1,
        ("process-payouts", "error"): 1,
        ("process-payouts", "skipped"): 1,
    }


def test_the_first_run_creates_the_counter_and_the_next_adds_to_it(fake_job):
    RunCount.add_one("fake-job", RunStatus.SUCCESS)
    RunCount.add_one("fake-job", RunStatus.SUCCESS)

    assert RunCount.objects.get(job="fake-job", outcome="success").total == 2


def test_a_database_outage_is_a_503_that_emails_nobody(client, cron_secret, monkeypatch, settings):
    from django.core import mail
    from django.db import OperationalError

    settings.ADMINS = [("Ops", "ops@example.com")]

    def unreachable(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr("cronlogs.metrics.all_job_statuses", unreachable)

    response = client.get("/api/cron/metrics", headers=BEARER)

    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"
    assert mail.outbox == []
