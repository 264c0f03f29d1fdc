"""docs/MONITORING.md, the README, .env.example and `cron_monitors` agree with the code."""

import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from cronlogs.jobs import JOBS
from cronlogs.management.commands.cron_monitors import duration_text
from cronlogs.pings import expected_check
from tests.conftest import CRON_TEST_SECRET
from tests.processes import PROJECT_DIR

MONITORING = (Path(PROJECT_DIR) / "docs" / "MONITORING.md").read_text()


def test_the_healthchecks_table_shows_each_jobs_period_and_grace():
    for job in JOBS.values():
        check = expected_check(job)
        period = duration_text(check["period"]).replace(" h", " hour")
        row = (
            f"| `{job.name}` | `{job.default_schedule}` | {period} | "
            f"{job.default_max_runtime_minutes:g} min | {duration_text(check['grace'])} |"
        )
        assert row in MONITORING, row


def test_the_grace_holds_a_whole_run_and_a_late_start(settings):
    settings.CRON_MAX_RUNTIME_SEND_BOOKING_REMINDERS = "2.5"
    settings.CRON_OVERDUE_GRACE_MINUTES = 3

    check = expected_check(JOBS["send-booking-reminders"])

    assert check["grace"].total_seconds() == (3 + 3) * 60
    assert check["period"].total_seconds() == 300


@pytest.mark.django_db
def test_every_metric_the_docs_name_is_served(client, settings):
    settings.CRON_SECRET = CRON_TEST_SECRET
    served = client.get(
        "/api/cron/metrics", headers={"Authorization": f"Bearer {CRON_TEST_SECRET}"}
    ).content.decode()

    served_names = {
        name if kind != "counter" or name.endswith("_total") else f"{name}_total"
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", served, re.MULTILINE)
    }

    # Every metric name in the text (not the secret file of the scrape config).
    named = set(re.findall(r"\bcallastar_(?:cron_(?!secret)|log_)[a-z_]+", MONITORING))
    # It should document every metric served, and name none that is not.
    assert named == served_names
    assert len(named) == 10


def test_cron_monitors_prints_each_jobs_check_without_the_ping_url(settings):
    settings.CRON_PING_URL_CLEANUP_LOGS = "https://hc-ping.com/5b1c7a4e-93f0-4c55-9d6e-2f0a8c41b7d3"
    out = StringIO()

    call_command("cron_monitors", stdout=out)

    text = out.getvalue()
    assert "5b1c7a4e" not in text
    lines = {line.split()[0]: line for line in text.splitlines() if line.split()}
    assert lines["cleanup-logs"].split()[-4:] == ["CRON_PING_URL_CLEANUP_LOGS", "set", "30", "min"]
    assert "send-booking-reminders     */5 * * * *     5 min   14 min" in text
    assert "Sentry: off (SENTRY_DSN not set)" in text


def test_the_env_example_and_readme_name_the_monitoring_settings():
    example = (Path(PROJECT_DIR) / ".env.example").read_text()
    readme = (Path(PROJECT_DIR) / "README.md").read_text()
    for job in JOBS.values():
        assert f"# {job.setting_name('PING_URL')}=" in example, job.name
    for name in (
        "CRON_PING_TIMEOUT_SECONDS=5",
        "SENTRY_DSN=",
        "SENTRY_ENVIRONMENT=",
        "SENTRY_RELEASE=",
        "SENTRY_TRACES_SAMPLE_RATE=0",
    ):
        assert name in example, name
    for fact in ("docs/MONITORING.md", "SENTRY_DSN", "CRON_PING_URL_<JOB>", "/api/cron/metrics"):
        assert fact in readme, fact
