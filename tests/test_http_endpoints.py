"""POST /api/cron/<cronType>, its GET readiness and GET /api/cron/health (SPEC §6)."""

import json
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from cronlogs import logger
from cronlogs.jobs import JOBS, Job
from cronlogs.models import Log
from tests.processes import held_job_lock

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-cron-value-for-tests-0123456789"


@pytest.fixture
def fake_job(monkeypatch, settings):
    """A job `fake-job` that counts its runs and fails when told to."""
    behaviour = {"runs": 0, "error": None}

    def fake_job_function(*, now, dry_run, stats):
        behaviour["runs"] += 1
        stats.update(widgets=7, itemsProcessed=7)
        if behaviour["error"]:
            raise behaviour["error"]

    monkeypatch.setitem(JOBS, "fake-job", Job("fake-job", "x.y", "A job for tests."))
    settings.CRON_SCHEDULES = {**settings.CRON_SCHEDULES, "fake-job": "*/5 * * * *"}
    monkeypatch.setattr(Job, "function", property(lambda job: fake_job_function))
    settings.CRON_SECRET = SECRET
    return behaviour


def stored_logs():
    return json.dumps([[row.message, row.context, row.error] for row in Log.objects.all()])


def test_it_runs_the_job_with_a_bearer_secret(client, fake_job):
    response = client.post("/api/cron/fake-job", headers={"Authorization": f"Bearer {SECRET}"})

    # It should run once, answer 200 with the stats and record trigger "http".
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["cronType"] == "fake-job"
    assert body["itemsProcessed"] == 7
    assert body["stats"] == {"widgets": 7}
    assert fake_job["runs"] == 1
    row = Log.objects.get(pk=body["logId"])
    assert row.type == "CRON_RUN"
    assert row.context["trigger"] == "http"
    assert SECRET not in stored_logs()


def test_it_accepts_the_x_cron_secret_header_and_a_lowercase_scheme(client, fake_job):
    assert client.post("/api/cron/fake-job", headers={"X-Cron-Secret": SECRET}).status_code == 200
    response = client.post("/api/cron/fake-job", headers={"Authorization": f"bearer {SECRET}"})
    assert response.status_code == 200
    assert fake_job["runs"] == 2


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        pytest.param({}, "", id="missing header"),
        pytest.param({"Authorization": "Bearer not-the-secret"}, "", id="wrong secret"),
        pytest.param({"Authorization": f"Basic {SECRET}"}, "", id="wrong scheme"),
        pytest.param({"Authorization": SECRET}, "", id="no scheme"),
        pytest.param({"Authorization": f"Bearer {SECRET[:-1]}X"}, "", id="last char differs"),
        pytest.param({"X-Cron-Secret": SECRET[:-1]}, "", id="one char short"),
        pytest.param({"Authorization": f"Bearer {SECRET}x"}, "", id="one char long"),
        pytest.param({"Authorization": "Bearer "}, "", id="empty bearer"),
        pytest.param({"X-Cron-Secret": ""}, "", id="empty x-cron-secret"),
        pytest.param({"Authorization": "Bearer " + "A" * 10_240}, "", id="10 kB header"),
        pytest.param({"X-Cron-Secret": SECRET * 300}, "", id="10 kB repeated secret"),
        pytest.param({}, f"?secret={SECRET}&cron_secret={SECRET}&token={SECRET}", id="query"),
    ],
)
def test_it_refuses_a_missing_or_wrong_secret(client, fake_job, caplog, headers, query):
    caplog.set_level(logging.DEBUG)

    response = client.post(f"/api/cron/fake-job{query}", headers=headers)

    # It should answer 401, run nothing and write the secret nowhere.
    assert response.status_code == 401
    assert response.json()["success"] is False
    assert fake_job["runs"] == 0
    assert not Log.objects.exists()
    assert SECRET not in response.content.decode()
    assert SECRET not in caplog.text


def test_it_fails_closed_when_no_secret_is_configured(client, fake_job, settings):
    settings.CRON_SECRET = ""

    for headers in ({}, {"Authorization": "Bearer "}, {"X-Cron-Secret": ""}):
        response = client.post("/api/cron/fake-job", headers=headers)
        # It should answer 503 whatever is sent, and run nothing.
        assert response.status_code == 503
        assert "CRON_SECRET" in response.json()["message"]
    assert fake_job["runs"] == 0
    assert not Log.objects.exists()


def test_it_answers_409_when_the_job_is_already_running(client, fake_job):
    with held_job_lock("fake-job"):
        response = client.post("/api/cron/fake-job", headers={"X-Cron-Secret": SECRET})

    # It should not run, say so, and leave a CRON_SKIPPED row.
    assert response.status_code == 409
    assert response.json()["error"] == "already_running"
    assert fake_job["runs"] == 0
    assert list(Log.objects.values_list("type", flat=True)) == ["CRON_SKIPPED"]


def test_it_answers_500_with_the_error_when_the_job_fails(client, fake_job):
    fake_job["error"] = RuntimeError(f"Stripe said no (key {SECRET})")

    response = client.post("/api/cron/fake-job", headers={"X-Cron-Secret": SECRET})

    # It should report the failure in the contracted shape, with the secret masked.
    assert response.status_code == 500
    body = response.json()
    assert body["success"] is False
    assert "Stripe said no" in body["error"]
    assert body["message"].startswith("Cron job fake-job failed")
    assert SECRET not in response.content.decode()
    assert Log.objects.get().type == "CRON_ERROR"
    assert SECRET not in stored_logs()


def test_it_answers_404_for_an_unknown_job(client, fake_job):
    for method in (client.get, client.post):
        response = method("/api/cron/no-such-job", headers={"X-Cron-Secret": SECRET})
        assert response.status_code == 404
        assert "fake-job" in response.json()["jobs"]
    assert not Log.objects.exists()


def test_it_refuses_other_methods(client, fake_job):
    response = client.put("/api/cron/fake-job", headers={"X-Cron-Secret": SECRET})
    assert response.status_code == 405
    assert fake_job["runs"] == 0


def test_it_reports_readiness_without_secrets(client, fake_job, settings):
    settings.DAILY_API_KEY = "daily-key-abcdef123456"
    settings.STRIPE_SECRET_KEY = ""
    logger.log_cron_run("cleanup-daily-rooms", 3, 1500, {"trigger": "cron"})

    ready = client.get("/api/cron/cleanup-daily-rooms")
    not_ready = client.get("/api/cron/process-payouts")

    # It should describe the job and what it lacks, by name only, and run nothing.
    assert ready.status_code == 200
    body = ready.json()
    assert body["cronType"] == "cleanup-daily-rooms"
    assert body["ready"] is True
    assert body["schedule"] == "0 * * * *"
    assert body["scheduleDescription"] == "Every hour"
    assert body["lastRun"]["itemsProcessed"] == 3
    assert not_ready.json()["ready"] is False
    assert not_ready.json()["missingSettings"] == ["STRIPE_SECRET_KEY"]
    for response in (ready, not_ready):
        text = response.content.decode()
        assert SECRET not in text
        assert "daily-key-abcdef123456" not in text
    assert Log.objects.count() == 1


def record_run(job, *, ago, failed=False):
    started = timezone.now() - ago
    context = {"startTime": started.isoformat(), "trigger": "cron"}
    if failed:
        row = logger.log_cron_error(job, RuntimeError("Daily API down"), context)
    else:
        row = logger.log_cron_run(job, 1, 100, context)
    Log.objects.filter(pk=row.pk).update(created_at=started)


def test_it_reports_health_200_when_every_job_is_on_time(client):
    for job in JOBS:
        record_run(job, ago=timedelta(minutes=1))

    response = client.get("/api/cron/health")

    assert response.status_code == 200
    assert response.json()["healthy"] is True
    assert response.json()["culprits"] == []


def test_it_reports_health_503_listing_the_failing_and_overdue_jobs(client):
    for job in JOBS:
        record_run(job, ago=timedelta(minutes=1))
    record_run("cleanup-daily-rooms", ago=timedelta(seconds=30), failed=True)
    # Every five minutes, but the last run was three hours ago.
    Log.objects.for_job("send-booking-reminders").update(
        created_at=timezone.now() - timedelta(hours=3),
        context={"cronType": "send-booking-reminders", "trigger": "cron"},
    )

    response = client.get("/api/cron/health")

    # It should answer 503 and name exactly the two culprits and why.
    assert response.status_code == 503
    culprits = {c["cronType"]: c["problems"] for c in response.json()["culprits"]}
    assert set(culprits) == {"cleanup-daily-rooms", "send-booking-reminders"}
    assert culprits["cleanup-daily-rooms"] == ["last run failed: RuntimeError: Daily API down"]
    assert culprits["send-booking-reminders"][0].startswith("missed its run due at ")
