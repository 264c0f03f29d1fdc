"""Sentry: errors and cron check-ins through the official SDK, sent to a real local HTTP
server standing in for Sentry's ingest endpoint (the SDK's own transport, envelopes parsed
with the SDK's own parser)."""

import gzip
import json
import subprocess
import sys
import textwrap

import pytest
import sentry_sdk
from django.core.checks import run_checks
from sentry_sdk.envelope import Envelope

from cronlogs.pausing import pause_job
from cronlogs.runner import RunStatus, run_job
from cronlogs.sentry import init_sentry, scrub_event
from tests.conftest import CRON_TEST_SECRET
from tests.local_http import running_server
from tests.processes import PROJECT_DIR, refused_in_one_line, run_manage

STRIPE_TEST_SECRET = "sk_test_51SentryMustNeverSeeThisKey0123"


class Ingest:
    """The envelopes a RecordingServer received as Sentry's ingest endpoint."""

    def __init__(self, server):
        self.server = server

    def raw(self):
        bodies = []
        for request in self.server.received:
            body = request.body
            if request.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            bodies.append(body)
        return bodies

    def items(self, kind):
        return [
            item
            for body in self.raw()
            for item in Envelope.deserialize(body).items
            if item.type == kind
        ]

    def check_ins(self):
        return [json.loads(item.payload.get_bytes()) for item in self.items("check_in")]

    def events(self):
        return [item.get_event() for item in self.items("event")]


@pytest.fixture
def sentry_ingest(settings):
    """The SDK started as settings start it, with a DSN naming a local server."""
    with running_server() as server:
        dsn = f"http://publickey@127.0.0.1:{server.port}/42"
        settings.SENTRY_DSN = dsn
        assert init_sentry(dsn=dsn, environment="test")
        ingest = Ingest(server)
        try:
            yield ingest
        finally:
            sentry_sdk.get_client().close(timeout=2)
            sentry_sdk.get_global_scope().set_client(None)


def sent(ingest):
    sentry_sdk.flush(timeout=5)
    return ingest


@pytest.mark.django_db
def test_a_run_checks_in_progress_then_ok_with_the_jobs_schedule(sentry_ingest, fake_job):
    result = run_job("fake-job", trigger="cron")

    check_ins = sent(sentry_ingest).check_ins()
    # It should check in twice to the job's monitor, under the run's id.
    assert result.status == RunStatus.SUCCESS
    assert [c["status"] for c in check_ins] == ["in_progress", "ok"]
    assert {c["monitor_slug"] for c in check_ins} == {"fake-job"}
    assert {c["check_in_id"] for c in check_ins} == {result.run_id}
    assert check_ins[1]["duration"] == pytest.approx(result.duration_ms / 1000)
    # ...each with the monitor's configuration from the job's definition.
    for check_in in check_ins:
        assert check_in["monitor_config"] == {
            "schedule": {"type": "crontab", "value": "*/5 * * * *"},
            "timezone": "UTC",
            "checkin_margin": 10,
            "max_runtime": 4,
        }
        assert check_in["environment"] == "test"
    assert sentry_ingest.events() == []


@pytest.mark.django_db
def test_the_monitor_follows_the_overrides(sentry_ingest, fake_job, settings):
    settings.CRON_SCHEDULE_FAKE_JOB = "*/2 * * * *"
    settings.CRON_MAX_RUNTIME_FAKE_JOB = "1.5"
    settings.CRON_OVERDUE_GRACE_MINUTES = 3

    run_job("fake-job")

    config = sent(sentry_ingest).check_ins()[0]["monitor_config"]
    # It should round the max runtime up to whole minutes, as Sentry takes them.
    assert (config["schedule"]["value"], config["checkin_margin"], config["max_runtime"]) == (
        "*/2 * * * *",
        3,
        2,
    )


@pytest.mark.django_db
def test_a_failed_run_checks_in_error_and_sends_the_exception_without_secrets(
    sentry_ingest, fake_job, settings
):
    settings.STRIPE_SECRET_KEY = STRIPE_TEST_SECRET
    settings.CRON_SECRET = CRON_TEST_SECRET

    def call_stripe(run):
        # Locals the SDK sends with the frame; names its own scrubber does not know.
        header = f"Bearer {STRIPE_TEST_SECRET}"
        stripe_answer = {"account": STRIPE_TEST_SECRET, "cron": CRON_TEST_SECRET}
        raise RuntimeError(f"Stripe refused {stripe_answer['account']} ({len(header)})")

    fake_job["during"] = call_stripe

    result = run_job("fake-job")

    sent(sentry_ingest)
    assert result.status == RunStatus.ERROR
    assert [c["status"] for c in sentry_ingest.check_ins()] == ["in_progress", "error"]
    # It should send the exception, tagged with the job and the run...
    [event] = sentry_ingest.events()
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert (
        exception["value"] == f"Stripe refused [REDACTED] ({len('Bearer ' + STRIPE_TEST_SECRET)})"
    )
    assert event["tags"]["cronType"] == "fake-job"
    assert event["tags"]["runId"] == result.run_id
    frame = exception["stacktrace"]["frames"][-1]
    assert frame["function"] == "call_stripe"
    assert "[REDACTED]" in str(frame["vars"]["stripe_answer"])
    # ...and no secret anywhere in what reached Sentry.
    for body in sentry_ingest.raw():
        assert STRIPE_TEST_SECRET.encode() not in body
        assert CRON_TEST_SECRET.encode() not in body


@pytest.mark.django_db
def test_skipped_and_dry_runs_check_in_nothing(sentry_ingest, fake_job):
    run_job("fake-job", dry_run=True)
    pause_job("fake-job", by="ana", reason="maintenance")
    paused = run_job("fake-job")

    assert paused.status == RunStatus.SKIPPED
    assert sent(sentry_ingest).check_ins() == []


@pytest.mark.django_db
def test_a_failing_sentry_changes_no_outcome(sentry_ingest, fake_job):
    sentry_ingest.server.status = 500
    fake_job["error"] = RuntimeError("boom")

    failed = run_job("fake-job")
    fake_job["error"] = None
    succeeded = run_job("fake-job")

    sent(sentry_ingest)
    assert (failed.status, succeeded.status) == (RunStatus.ERROR, RunStatus.SUCCESS)
    assert sentry_ingest.server.received  # it was told, and said no


@pytest.mark.django_db(transaction=True)
def test_a_job_command_checks_in_when_the_environment_sets_sentry_dsn(subprocess_env):
    with running_server() as server:
        env = {**subprocess_env, "SENTRY_DSN": f"http://publickey@127.0.0.1:{server.port}/7"}

        finished = run_manage(["send_booking_reminders", "--trigger", "cron"], env)

        # It should have sent both check-ins before the process exited.
        assert finished.returncode == 0, finished.stderr
        check_ins = Ingest(server).check_ins()
    assert [(c["monitor_slug"], c["status"]) for c in check_ins] == [
        ("send-booking-reminders", "in_progress"),
        ("send-booking-reminders", "ok"),
    ]
    assert check_ins[0]["monitor_config"]["schedule"]["value"] == "*/5 * * * *"
    assert check_ins[0]["monitor_config"]["max_runtime"] == 4


@pytest.mark.django_db(transaction=True)
def test_without_sentry_dsn_the_sdk_is_not_even_imported(subprocess_env):
    env = {key: value for key, value in subprocess_env.items() if key != "SENTRY_DSN"}
    script = textwrap.dedent(
        """
        import sys, django
        django.setup()
        from cronlogs.runner import run_job
        result = run_job("send-booking-reminders")
        print(result.status, "sentry_sdk" in sys.modules)
        """
    )
    finished = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.split() == ["success", "False"]


def test_a_dsn_that_cannot_be_read_fails_the_check_naming_sentry_dsn(settings):
    settings.SENTRY_DSN = "not a dsn"

    errors = [error.msg for error in run_checks() if error.id == "cronlogs.E002"]

    assert len(errors) == 1 and errors[0].startswith("SENTRY_DSN cannot be read")
    assert "not a dsn" not in errors[0]


@pytest.mark.parametrize(
    "variable, value, expected",
    [
        ("SENTRY_DSN", "nonsense", "SENTRY_DSN cannot be read"),
        ("SENTRY_TRACES_SAMPLE_RATE", "2", "SENTRY_TRACES_SAMPLE_RATE='2': expected"),
    ],
)
def test_a_bad_sentry_setting_in_the_environment_stops_commands_with_one_line(
    subprocess_env, variable, value, expected
):
    line = refused_in_one_line(variable, {**subprocess_env, variable: value})

    assert expected in line


@pytest.mark.parametrize("value", ["abc", "-0.5", "2"])
def test_a_bad_traces_sample_rate_fails_the_check(settings, value):
    settings.SENTRY_TRACES_SAMPLE_RATE = value

    errors = [error.msg for error in run_checks() if error.id == "cronlogs.E002"]

    assert len(errors) == 1 and errors[0].startswith(f"SENTRY_TRACES_SAMPLE_RATE={value!r}")


def test_every_event_is_scrubbed_like_a_log_row(settings):
    settings.CRON_SECRET = CRON_TEST_SECRET
    event = {
        "message": f"refused {CRON_TEST_SECRET}",
        "request": {"headers": {"Authorization": f"Bearer {CRON_TEST_SECRET}", "Accept": "*/*"}},
        "breadcrumbs": {"values": [{"message": f"X-Cron-Secret: {CRON_TEST_SECRET}"}]},
    }

    scrubbed = scrub_event(event, {})

    assert CRON_TEST_SECRET not in json.dumps(scrubbed)
    assert scrubbed["request"]["headers"] == {"Authorization": "[REDACTED]", "Accept": "*/*"}
    assert scrubbed["message"] == "refused [REDACTED]"


@pytest.mark.django_db
def test_errors_go_through_the_django_integration(sentry_ingest):
    from sentry_sdk.integrations.django import DjangoIntegration

    assert sentry_sdk.get_client().get_integration(DjangoIntegration) is not None
