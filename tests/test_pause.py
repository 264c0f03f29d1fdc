"""Pausing a job: every trigger does no work and says who paused it and why."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone

from cronlogs.crontab import run_scheduled_job
from cronlogs.models import JobState, Log
from cronlogs.pausing import PauseError, pause_job, resume_job
from cronlogs.runner import RunStatus, run_job
from tests.conftest import job_command

pytestmark = pytest.mark.django_db

JOBS_PAGE = "/admin/cronlogs/cronjob/"


@pytest.fixture
def operator(client, make_staff):
    user = make_staff("cronlogs.view_log", "cronlogs.run_cron_jobs", email="ops@callastar.test")
    client.force_login(user)
    return user


def skipped_rows():
    return list(Log.objects.filter(type="CRON_SKIPPED").order_by("id"))


def test_it_does_no_work_on_any_trigger_while_paused(fake_job, client, operator, cron_secret):
    call_command("cron_pause", "fake-job", "--reason", "Stripe incident #42", "--by", "ana")

    # Every way of starting the job: crontab, command line, HTTP, the admin's Run now.
    assert run_scheduled_job("fake-job").status == RunStatus.SKIPPED
    out = StringIO()
    call_command(job_command("fake-job"), stdout=out)
    http = client.post("/api/cron/fake-job", headers=cron_secret)
    admin = client.post("/admin/cronlogs/cronjob/fake-job/run/", follow=True)

    # It should run nothing, answer 409 "paused" over HTTP and exit 0 elsewhere.
    assert fake_job["runs"] == 0
    assert http.status_code == 409 and http.json()["error"] == "paused"
    assert "skipped, paused by ana: Stripe incident #42" in out.getvalue()
    assert "was not run: paused by ana: Stripe incident #42" in str(
        next(iter(admin.context["messages"]))
    )
    # ...and write one WARNING CRON_SKIPPED per attempt, naming who paused it and why.
    rows = skipped_rows()
    assert [row.context["trigger"] for row in rows] == ["cron", "cli", "http", "admin"]
    for row in rows:
        assert row.level == "WARNING"
        assert row.context["skipReason"] == "paused" and row.context["pausedBy"] == "ana"
        assert "paused by ana: Stripe incident #42" in row.message

    # Resumed, it runs again.
    call_command("cron_resume", "fake-job", stdout=StringIO())
    assert run_job("fake-job").status == RunStatus.SUCCESS
    assert fake_job["runs"] == 1


def test_it_shows_a_paused_job_as_paused_and_healthy_until_it_is_forgotten(
    fake_job, client, settings, cron_secret
):
    settings.ADMINS = [("Ops", "ops@example.com")]
    run_job("fake-job")
    pause_job("fake-job", by="ana", reason="maintenance")

    job = next(
        j for j in client.get("/api/cron/health").json()["jobs"] if j["cronType"] == "fake-job"
    )
    assert (job["state"], job["healthy"]) == ("paused", True)

    # Paused longer than CRON_PAUSE_ALERT_HOURS, it is an outage: unhealthy, one email.
    JobState.objects.filter(job="fake-job").update(paused_at=timezone.now() - timedelta(hours=25))
    response = client.get("/api/cron/health", headers=cron_secret)
    client.get("/api/cron/health")
    assert response.status_code == 503
    culprit = next(c for c in response.json()["culprits"] if c["cronType"] == "fake-job")
    assert culprit["state"] == "paused"
    assert (
        "paused by ana since" in culprit["problems"][0]
        and "longer than 24 h" in culprit["problems"][0]
    )
    assert [m.subject for m in mail.outbox] == [
        "[Call a Star] Cron job fake-job has been paused too long"
    ]


def test_it_pauses_and_resumes_from_the_jobs_page(fake_job, client, operator):
    page = client.get(JOBS_PAGE).content.decode()
    assert 'action="/admin/cronlogs/cronjob/fake-job/pause/"' in page

    # It should insist on a reason.
    refused = client.post("/admin/cronlogs/cronjob/fake-job/pause/", {"reason": " "}, follow=True)
    assert "A reason is required" in str(next(iter(refused.context["messages"])))
    assert not JobState.objects.filter(paused_at__isnull=False).exists()

    # It should refuse a reason the database cannot store with a message, not a 500.
    refused = client.post(
        "/admin/cronlogs/cronjob/fake-job/pause/", {"reason": "a\x00b"}, follow=True
    )
    assert "may not contain NUL" in str(next(iter(refused.context["messages"])))
    assert not JobState.objects.filter(paused_at__isnull=False).exists()

    client.post("/admin/cronlogs/cronjob/fake-job/pause/", {"reason": "bank holiday"})
    state = JobState.objects.get(job="fake-job")
    assert (state.paused_by, state.pause_reason) == ("ops@callastar.test", "bank holiday")
    page = client.get(JOBS_PAGE).content.decode()
    assert "paused by ops@callastar.test since" in page and "bank holiday" in page
    assert 'action="/admin/cronlogs/cronjob/fake-job/resume/"' in page
    assert Log.objects.get(type="CRON_PAUSED").context["pausedBy"] == "ops@callastar.test"

    client.post("/admin/cronlogs/cronjob/fake-job/resume/")
    assert JobState.objects.get(job="fake-job").paused_at is None
    assert Log.objects.get(type="CRON_RESUMED").context["resumedBy"] == "ops@callastar.test"


def test_it_lets_only_staff_with_the_run_permission_pause(fake_job, client, make_user):
    viewer = make_user(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_log"))
    client.force_login(viewer)

    assert (
        client.post("/admin/cronlogs/cronjob/fake-job/pause/", {"reason": "x"}).status_code == 403
    )
    assert "/pause/" not in client.get(JOBS_PAGE).content.decode()
    assert not JobState.objects.filter(paused_at__isnull=False).exists()


def test_it_needs_a_reason_and_a_paused_job_to_resume(fake_job):
    with pytest.raises(PauseError, match="reason is required"):
        pause_job("fake-job", by="ana", reason="")
    with pytest.raises(PauseError, match="not paused"):
        resume_job("fake-job", by="ana")
    with pytest.raises(PauseError, match="too long: 500 characters at most"):
        pause_job("fake-job", by="ana", reason="x" * 501)
    with pytest.raises(CommandError, match="too long: 254 characters at most"):
        call_command(
            "cron_pause", "fake-job", "--reason", "r", "--by", "b" * 255, stdout=StringIO()
        )
    assert not JobState.objects.filter(paused_at__isnull=False).exists()
    with pytest.raises(CommandError, match="not paused"):
        call_command("cron_resume", "fake-job", stdout=StringIO())


def test_it_keeps_the_first_pause_time_when_paused_again(fake_job):
    first = pause_job("fake-job", by="ana", reason="one").paused_at
    again = pause_job("fake-job", by="bo", reason="two")

    assert again.paused_at == first and (again.paused_by, again.pause_reason) == ("bo", "two")


def test_a_dry_run_still_reports_while_paused(fake_job):
    pause_job("fake-job", by="ana", reason="x")

    result = run_job("fake-job", dry_run=True)

    assert result.status == RunStatus.DRY_RUN and not Log.objects.filter(type="CRON_SKIPPED")
