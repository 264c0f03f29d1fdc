"""The admin's Jobs page: schedule, last and next run, overdue flag, chart, "Run now"."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from cronlogs.jobs import JOBS
from cronlogs.models import Log
from tests.conftest import record_run

pytestmark = pytest.mark.django_db

JOBS_PAGE = "/admin/cronlogs/cronjob/"
RUN_URL = "/admin/cronlogs/cronjob/cleanup-logs/run/"


@pytest.fixture
def viewer(make_staff):
    return make_staff("cronlogs.view_log")


@pytest.fixture
def operator(make_staff):
    return make_staff("cronlogs.view_log", "cronlogs.run_cron_jobs")


def job_row(html, name):
    return re.search(rf'<tr id="job-{name}".*?</tr>', html, re.S).group(0)


def test_it_lists_every_job_with_its_schedule_and_last_run(client, viewer):
    record_run("send-booking-reminders", ago=timedelta(minutes=2), items=5, duration=4321)
    client.force_login(viewer)

    html = client.get(JOBS_PAGE).content.decode()

    for name, job in JOBS.items():
        row = job_row(html, name)
        assert job.schedule in row
        assert job.description in row
    reminders = job_row(html, "send-booking-reminders")
    assert "Every 5 minutes" in reminders
    assert "4321 ms" in reminders and "5 items" in reminders and "by cron" in reminders
    assert ">ok<" in reminders
    assert "never run" in job_row(html, "process-payouts")
    assert ">never-run<" in job_row(html, "process-payouts")


def test_it_flags_an_overdue_job_and_a_failing_one(client, viewer):
    for name in JOBS:
        record_run(name, ago=timedelta(minutes=1))
    Log.objects.for_job("cleanup-logs").update(
        created_at=timezone.now() - timedelta(days=3), context={"cronType": "cleanup-logs"}
    )
    record_run("process-payouts", ago=timedelta(seconds=5), failed=True)
    client.force_login(viewer)

    html = client.get(JOBS_PAGE).content.decode()

    # It should mark exactly the late job overdue and the failed one failing.
    assert ">overdue<" in job_row(html, "cleanup-logs")
    assert ">failing<" in job_row(html, "process-payouts")
    for name in ("send-booking-reminders", "cleanup-daily-rooms", "process-automatic-payouts"):
        row = job_row(html, name)
        assert ">overdue<" not in row and ">failing<" not in row and ">ok<" in row


def test_it_draws_the_last_30_durations_as_an_inline_svg(client, viewer):
    for minutes in range(35, 0, -1):
        record_run("cleanup-daily-rooms", ago=timedelta(minutes=minutes), duration=minutes * 10)
    record_run("cleanup-daily-rooms", ago=timedelta(seconds=1), failed=True)
    client.force_login(viewer)

    row = job_row(client.get(JOBS_PAGE).content.decode(), "cleanup-daily-rooms")

    # It should plot 30 runs, the failed one in its own colour, with no external asset.
    assert row.count("<circle") == 30
    assert row.count('class="failed"') == 1
    assert "<polyline points=" in row
    assert "http" not in row.split("<svg", 1)[1].split("</svg>")[0].replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )


def test_it_hides_run_now_from_staff_without_the_permission(client, viewer):
    client.force_login(viewer)

    page = client.get(JOBS_PAGE)

    # It should show the page but no button, and refuse the POST itself.
    assert page.status_code == 200
    assert b"Run now" not in page.content
    assert client.post(RUN_URL).status_code == 403
    assert not Log.objects.exists()


def test_it_runs_a_job_for_a_user_with_the_permission(client, operator):
    client.force_login(operator)
    page = client.get(JOBS_PAGE).content.decode()
    assert f'action="{RUN_URL}"' in page

    response = client.post(RUN_URL, follow=True)

    # It should run through the runner with trigger "admin", say who, and what happened.
    row = Log.objects.get(type="CRON_RUN")
    assert (row.context["cronType"], row.context["trigger"]) == ("cleanup-logs", "admin")
    assert row.context["triggeredBy"] == operator.email
    shown = [str(message) for message in response.context["messages"]]
    assert len(shown) == 1
    assert shown[0].startswith("cleanup-logs: done; processed 0 items")
    assert f"/admin/cronlogs/cronrun/{row.pk}/change/" in shown[0]


def test_it_needs_a_post_with_a_csrf_token(operator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)

    # It should refuse a GET and a POST without the token, and run nothing.
    assert client.get(RUN_URL).status_code == 405
    assert client.post(RUN_URL).status_code == 403
    assert not Log.objects.exists()

    page = client.get(JOBS_PAGE).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert client.post(RUN_URL, {"csrfmiddlewaretoken": token}).status_code == 302
    assert Log.objects.get(type="CRON_RUN").context["trigger"] == "admin"


def test_it_reports_a_failed_run_as_an_error(client, operator, settings):
    settings.LOG_RETENTION_DAYS = {"INFO": 0}  # An invalid policy makes cleanup-logs fail.
    client.force_login(operator)

    response = client.post(RUN_URL, follow=True)

    message = next(iter(response.context["messages"]))
    assert message.level_tag == "error"
    assert "cleanup-logs: FAILED" in str(message)
    assert Log.objects.filter(type="CRON_ERROR").count() == 1


def test_it_answers_404_for_an_unknown_job(client, operator):
    client.force_login(operator)
    assert client.post("/admin/cronlogs/cronjob/no-such-job/run/").status_code == 404
