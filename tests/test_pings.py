"""Check-in pings (Healthchecks style) against a real local HTTP server standing in for
the ping service."""

import time
import uuid
from io import StringIO

import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command

from cronlogs.models import Log
from cronlogs.pausing import pause_job
from cronlogs.pings import ping_address
from cronlogs.runner import RunStatus, run_job
from cronlogs.work import ItemOutcome
from tests.conftest import job_command
from tests.local_http import running_server
from tests.processes import held_job_lock, refused_in_one_line

pytestmark = pytest.mark.django_db

# The part of a check-in URL that lets anyone report on the job.
PING_TOKEN = "5b1c7a4e-93f0-4c55-9d6e-2f0a8c41b7d3"


@pytest.fixture
def ping_service(settings, fake_job):
    """A ping service on 127.0.0.1 that `fake-job` pings; set `.status` or `.hang`."""
    settings.CRON_PING_TIMEOUT_SECONDS = 2
    with running_server() as server:
        settings.CRON_PING_URL_FAKE_JOB = f"{server.url}/{PING_TOKEN}"
        yield server


def ping_rows():
    return list(Log.objects.filter(type=Log.Type.CRON_PING_FAILED).order_by("id"))


def test_it_pings_start_then_success_with_the_run_id_and_summary(ping_service):
    result = run_job("fake-job", trigger="cron")

    # It should send one start and one success ping, in that order, as POSTs.
    assert result.status == RunStatus.SUCCESS
    assert ping_service.paths() == [f"/{PING_TOKEN}/start", f"/{PING_TOKEN}"]
    assert {request.method for request in ping_service.received} == {"POST"}
    # ...both naming the run, as a UUID, so the service pairs them up.
    rids = {request.query["rid"] for request in ping_service.received}
    assert rids == {str(uuid.UUID(hex=result.run_id))}
    # ...the end ping's body being the run's summary line.
    start, end = ping_service.received
    assert start.text.startswith("fake-job: started on ")
    assert end.text == result.summary()
    assert ping_rows() == []


def test_it_pings_start_then_fail_for_a_failed_run(ping_service, fake_job):
    fake_job["error"] = RuntimeError("the widget press jammed")

    result = run_job("fake-job")

    assert result.status == RunStatus.ERROR
    assert ping_service.paths() == [f"/{PING_TOKEN}/start", f"/{PING_TOKEN}/fail"]
    assert "FAILED" in ping_service.received[1].text
    assert "the widget press jammed" in ping_service.received[1].text
    assert len({request.query["rid"] for request in ping_service.received}) == 1


def test_it_counts_a_degraded_run_as_a_success_that_says_so(ping_service, fake_job):
    fake_job["outcomes"] = [(ItemOutcome.DONE, None), (ItemOutcome.FAILED, "503")]

    result = run_job("fake-job")

    assert result.status == RunStatus.DEGRADED
    assert ping_service.paths() == [f"/{PING_TOKEN}/start", f"/{PING_TOKEN}"]
    assert "DEGRADED (1 of 2 items failed)" in ping_service.received[1].text


def test_it_sends_only_a_fail_ping_when_the_run_fails_before_starting(ping_service, settings):
    settings.CRON_MAX_RUNTIME_FAKE_JOB = "not a number"

    result = run_job("fake-job")

    # It should report the failure, without a start it never made.
    assert result.status == RunStatus.ERROR
    assert ping_service.paths() == [f"/{PING_TOKEN}/fail"]


def test_it_sends_nothing_for_skipped_or_dry_runs(ping_service, fake_job):
    dry = run_job("fake-job", dry_run=True)
    with held_job_lock("fake-job"):
        busy = run_job("fake-job")
    pause_job("fake-job", by="ana", reason="maintenance")
    paused = run_job("fake-job")

    assert dry.status == RunStatus.DRY_RUN
    assert busy.skip_reason == "already_running" and paused.skip_reason == "paused"
    # It should not have told the ping service anything.
    assert ping_service.received == []


def test_a_ping_service_answering_500_changes_nothing_but_one_warning_per_ping(ping_service):
    ping_service.status = 500

    result = run_job("fake-job")

    # It should try each ping twice (one retry), then give up.
    assert result.status == RunStatus.SUCCESS
    assert len(ping_service.received) == 4
    assert Log.objects.get(pk=result.log_id).type == Log.Type.CRON_RUN
    # ...and leave one WARNING row per ping that did not get through.
    rows = ping_rows()
    assert [row.context["ping"] for row in rows] == ["start", "success"]
    assert {row.level for row in rows} == {Log.Level.WARNING}
    assert rows[0].context["error"] == "HTTP 500 (after 2 attempts)"
    assert rows[0].context["runId"] == result.run_id
    assert rows[0].context["setting"] == "CRON_PING_URL_FAKE_JOB"


def test_a_ping_service_that_hangs_costs_at_most_the_ping_timeout(ping_service, settings):
    settings.CRON_PING_TIMEOUT_SECONDS = 1
    settings.CRON_PING_URL_FAKE_JOB = ""
    unpinged = run_job("fake-job")
    settings.CRON_PING_URL_FAKE_JOB = f"{ping_service.url}/{PING_TOKEN}"
    ping_service.hang = True

    began = time.monotonic()
    result = run_job("fake-job")
    elapsed = time.monotonic() - began

    # It should keep the run's outcome...
    assert result.status == RunStatus.SUCCESS
    assert [row.context["ping"] for row in ping_rows()] == ["start", "success"]
    assert ping_rows()[0].context["error"].startswith("timed out")
    # ...its recorded duration longer by the start ping's timeout at most (the end ping is
    # sent after the duration is taken), and the whole call by the two pings' timeouts
    # (with slack for a loaded machine, well short of a second timeout).
    assert result.duration_ms - unpinged.duration_ms < 1000 + 900
    assert elapsed < 2 * 1 + 1.9
    # Each ping had its retry within its timeout.
    assert len(ping_service.received) == 4


def test_a_ping_url_refused_with_404_is_not_retried(ping_service):
    ping_service.status = 404

    run_job("fake-job")

    assert len(ping_service.received) == 2
    assert ping_rows()[0].context["error"] == "HTTP 404 (after 1 attempt(s))"


def test_the_ping_url_appears_in_no_log_row_or_output(
    ping_service, fake_job, settings, client, cron_secret
):
    ping_service.status = 500
    url = settings.CRON_PING_URL_FAKE_JOB
    # A job whose error and stats happen to carry the URL.
    fake_job["stats"] = {"lastPing": url}
    fake_job["error"] = RuntimeError(f"could not reach {url}/start nor {PING_TOKEN}")
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError) as failed:
        call_command(job_command("fake-job"), "--json", stdout=out, stderr=err)
    with pytest.raises(CommandError):
        call_command("cron_status", "--json", stdout=out, stderr=err)
    health = client.get("/api/cron/health", headers={"X-Cron-Secret": cron_secret["X-Cron-Secret"]})

    rows = list(Log.objects.values_list("message", "context", "error"))
    # It should have written the start, two ping warnings and the error...
    assert len(rows) == 4
    # ...none of them, nor any output, holding the URL or its token.
    for text in [*map(str, rows), out.getvalue(), err.getvalue(), str(failed.value)]:
        assert PING_TOKEN not in text
    assert PING_TOKEN not in health.content.decode()
    assert "[REDACTED]" in str(failed.value)


def test_it_keeps_a_query_string_already_in_the_url():
    run_id = uuid.uuid4().hex

    address = ping_address("https://hc-ping.com/abc/?create=1", "fail", run_id)

    assert address == f"https://hc-ping.com/abc/fail?create=1&rid={uuid.UUID(hex=run_id)}"


def test_a_ping_url_that_is_not_http_fails_the_check_without_showing_it(settings):
    settings.CRON_PING_URL_SEND_BOOKING_REMINDERS = f"hc-ping.com/{PING_TOKEN}"

    errors = [error.msg for error in run_checks() if error.id == "cronlogs.E001"]

    assert errors == [
        "CRON_PING_URL_SEND_BOOKING_REMINDERS: expected an http:// or https:// URL, e.g. "
        "CRON_PING_URL_SEND_BOOKING_REMINDERS=https://hc-ping.com/<uuid>"
    ]


@pytest.mark.parametrize("value", ["abc", "0", "-1", "600"])
def test_a_bad_ping_timeout_fails_the_check_naming_the_variable(settings, value):
    settings.CRON_PING_TIMEOUT_SECONDS = value

    errors = [error.msg for error in run_checks() if error.id == "cronlogs.E002"]

    assert len(errors) == 1 and errors[0].startswith(f"CRON_PING_TIMEOUT_SECONDS={value!r}")


def test_a_real_job_pings_from_its_command(settings):
    with running_server() as server:
        settings.CRON_PING_URL_SEND_BOOKING_REMINDERS = f"{server.url}/{PING_TOKEN}"

        call_command("send_booking_reminders", "--trigger", "cron", stdout=StringIO())

    assert server.paths() == [f"/{PING_TOKEN}/start", f"/{PING_TOKEN}"]
    assert server.received[1].text.startswith("send-booking-reminders: done; processed 0 items")


@pytest.mark.parametrize(
    "variable, value, expected",
    [
        ("CRON_PING_TIMEOUT_SECONDS", "abc", "CRON_PING_TIMEOUT_SECONDS='abc': expected"),
        ("CRON_PING_URL_CLEANUP_LOGS", f"ftp://hc-ping.com/{PING_TOKEN}", "CRON_PING_URL_"),
    ],
)
def test_a_bad_ping_setting_in_the_environment_stops_commands_with_one_line(
    subprocess_env, variable, value, expected
):
    line = refused_in_one_line(variable, {**subprocess_env, variable: value})

    assert expected in line
    # ...never showing a ping URL, which is a credential.
    assert PING_TOKEN not in line


def test_a_staff_action_doing_part_of_the_work_sends_no_ping(ping_service):
    def one_item(run):
        run.stats["itemsProcessed"] = 1

    result = run_job("fake-job", trigger="admin", triggered_by="ops@example.com", task=one_item)

    # It should run and log, but not tell the check-in service the job did its work.
    assert result.status == RunStatus.SUCCESS
    assert ping_service.received == []
