"""POST /api/cron/<cronType>, its GET readiness and GET /api/cron/health (SPEC §6)."""

import json
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from cronlogs import logger
from cronlogs.jobs import JOBS
from cronlogs.models import Log
from tests.conftest import CRON_TEST_SECRET, record_run
from tests.processes import held_job_lock

pytestmark = pytest.mark.django_db

SECRET = CRON_TEST_SECRET


@pytest.fixture(autouse=True)
def _cron_secret(cron_secret):
    return cron_secret


def stored_logs():
    return json.dumps([[row.message, row.context, row.error] for row in Log.objects.all()])


def test_it_runs_the_job_with_a_bearer_secret(client, fake_job):
    response = client.post("/api/cron/fake-job", headers={"Authorization": f"Bearer {SECRET}"})

    # It should run once, answer 200 with the stats and record trigger "http".
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["cronType"] == "fake-job"
    assert body["itemsProcessed"] == 3
    assert body["stats"] == {"widgets": 3}
    assert fake_job["runs"] == 1
    row = Log.objects.get(pk=body["logId"])
    assert row.type == "CRON_RUN"
    assert row.context["runId"] == body["runId"]
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
    assert Log.objects.get(pk=body["logId"]).type == "CRON_ERROR"
    assert SECRET not in stored_logs()


def test_it_answers_404_for_an_unknown_job(client, fake_job):
    for method in (client.get, client.post):
        response = method("/api/cron/no-such-job", headers={"X-Cron-Secret": SECRET})
        assert response.status_code == 404
        assert "fake-job" in response.json()["jobs"]
    assert not Log.objects.exists()


def test_it_refuses_other_methods_with_json(client, fake_job):
    for url in ("/api/cron/fake-job", "/api/cron/health"):
        for method in (client.put, client.delete, client.patch):
            response = method(url, headers={"X-Cron-Secret": SECRET})
            # It should answer a JSON 405 (not Django's HTML CSRF page) and run nothing.
            assert response.status_code == 405
            assert response["Content-Type"] == "application/json"
            assert response.json()["error"] == "method_not_allowed"
    assert client.post("/api/cron/health").status_code == 405
    assert fake_job["runs"] == 0


def test_it_reports_readiness_without_secrets(client, fake_job, settings):
    settings.DAILY_API_KEY = "daily-key-abcdef123456"
    settings.STRIPE_SECRET_KEY = ""
    logger.log_cron_run("cleanup-daily-rooms", 3, 1500, {"trigger": "cron"})
    authorized = {"Authorization": f"Bearer {SECRET}"}

    ready = client.get("/api/cron/cleanup-daily-rooms", headers=authorized)
    not_ready = client.get("/api/cron/process-payouts", headers=authorized)
    anonymous = client.get("/api/cron/process-payouts")

    # It should describe the job and what it lacks, by name only, and run nothing.
    assert ready.status_code == 200
    body = ready.json()
    assert body["cronType"] == "cleanup-daily-rooms"
    assert body["ready"] is True
    assert body["state"] == "ok"
    assert body["schedule"] == "0 * * * *"
    assert body["scheduleDescription"] == "Every hour"
    assert body["lastRun"]["itemsProcessed"] == 3
    assert not_ready.json()["ready"] is False
    assert not_ready.json()["missingSettings"] == ["STRIPE_SECRET_KEY"]
    # ...and without the secret only whether it is ready and its state, no setting names.
    assert anonymous.json()["ready"] is False
    assert anonymous.json()["state"] == "never-run"
    assert "missingSettings" not in anonymous.json()
    assert "STRIPE_SECRET_KEY" not in anonymous.content.decode()
    for response in (ready, not_ready, anonymous):
        text = response.content.decode()
        assert SECRET not in text
        assert "daily-key-abcdef123456" not in text
    assert Log.objects.count() == 1


def test_it_says_not_ready_for_a_secret_no_request_can_present(client, fake_job, settings):
    settings.CRON_SECRET = f" {SECRET} "

    # It should not call a trigger ready that could never be authorized.
    assert client.get("/api/cron/fake-job").json()["ready"] is False
    response = client.post("/api/cron/fake-job", headers={"X-Cron-Secret": f" {SECRET} "})
    assert response.status_code == 401


def test_it_reports_health_200_when_every_job_is_on_time(client):
    for job in JOBS:
        record_run(job, ago=timedelta(minutes=1))

    response = client.get("/api/cron/health")

    assert response.status_code == 200
    assert response.json()["healthy"] is True
    assert response.json()["culprits"] == []
    assert {job["state"] for job in response.json()["jobs"]} == {"ok"}


def test_it_reports_health_503_listing_the_failing_and_overdue_jobs(client):
    for job in JOBS:
        record_run(job, ago=timedelta(minutes=1))
    record_run("cleanup-daily-rooms", ago=timedelta(seconds=30), failed=True)
    # Every five minutes, but the last run was three hours ago.
    Log.objects.for_job("send-booking-reminders").update(
        created_at=timezone.now() - timedelta(hours=3),
        context={"cronType": "send-booking-reminders", "trigger": "cron"},
    )

    response = client.get("/api/cron/health", headers={"X-Cron-Secret": SECRET})

    # It should answer 503 and name exactly the two culprits, their states and why.
    assert response.status_code == 503
    culprits = {c["cronType"]: c for c in response.json()["culprits"]}
    assert set(culprits) == {"cleanup-daily-rooms", "send-booking-reminders"}
    assert culprits["cleanup-daily-rooms"]["state"] == "failing"
    assert culprits["cleanup-daily-rooms"]["problems"] == [
        "last run failed: RuntimeError: Daily API down"
    ]
    assert culprits["send-booking-reminders"]["state"] == "overdue"
    assert culprits["send-booking-reminders"]["problems"][0].startswith("missed its run due at ")


def test_it_shows_only_states_to_anyone_without_the_secret(client):
    for job in JOBS:
        record_run(job, ago=timedelta(minutes=1))
    record_run("cleanup-daily-rooms", ago=timedelta(seconds=30), failed=True)

    response = client.get("/api/cron/health")

    # It should say which job is unhealthy and in which state, but not the error text.
    assert response.status_code == 503
    assert response.json()["culprits"] == [{"cronType": "cleanup-daily-rooms", "state": "failing"}]
    assert "Daily API down" not in response.content.decode()
    for job in response.json()["jobs"]:
        assert set(job) == {"cronType", "state", "healthy"}


def test_it_does_not_email_admins_for_a_503_answer(client, settings, mailoutbox):
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.DEBUG = False
    for job in JOBS:
        record_run(job, ago=timedelta(minutes=1))
    record_run("cleanup-daily-rooms", ago=timedelta(seconds=30), failed=True)

    for _ in range(3):
        assert client.get("/api/cron/health").status_code == 503

    # It should send the one state-change alert, and no "Internal Server Error" per poll.
    assert [message.subject for message in mailoutbox] == [
        "[Call a Star] Cron job cleanup-daily-rooms is failing"
    ]
