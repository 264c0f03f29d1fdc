"""Sentry: errors through the official SDK and its Django integration, and one cron monitor
per job (https://docs.sentry.io/platforms/python/crons/).

Nothing here imports `sentry_sdk` unless SENTRY_DSN is set: settings call `init_sentry` only
then, and the check-in functions return at once without it. Each job checks in to a monitor
named after it (its cronType) — in progress when a run starts, ok or error when it ends,
under the run's id — and sends the monitor's configuration with every check-in (schedule,
UTC, check-in margin, max runtime, all from the job's definition), so Sentry creates and
updates the monitor itself and nothing is set up by hand there.

Secrets never reach Sentry: every event goes through the redaction of log rows first.
A Sentry failure is logged here and never reaches the run.
"""

import logging
import math

from django.conf import settings

from cronlogs.redaction import redact
from cronlogs.schedule import overdue_grace

log = logging.getLogger(__name__)


class CheckInStatus:
    # The values of sentry_sdk.crons.MonitorStatus, without importing the SDK to name them.
    IN_PROGRESS = "in_progress"
    OK = "ok"
    ERROR = "error"


def init_sentry(*, dsn, environment="", release="", traces_sample_rate=0.0):
    """Start the SDK (called from settings when SENTRY_DSN is set). Returns False, leaving
    it off, for a DSN it cannot read; `manage.py check` names SENTRY_DSN then."""
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.utils import BadDsn

    try:
        sentry_sdk.init(
            dsn=dsn,
            integrations=[DjangoIntegration()],
            # No personal data (users, cookies, bodies): the SDK's default while neither
            # send_default_pii nor data_collection is given.
            environment=environment or None,
            release=release or None,
            # Tracing stays off unless asked for (None, not 0: the SDK's own "off").
            traces_sample_rate=traces_sample_rate or None,
            before_send=scrub_event,
            before_send_transaction=scrub_event,
        )
    except BadDsn:
        return False
    return True


def dsn_problem(dsn):
    """Why `dsn` is not a usable DSN, or None (without the value: it is a credential)."""
    from sentry_sdk.utils import BadDsn, Dsn

    try:
        Dsn(dsn)
    except BadDsn as exc:
        return f"SENTRY_DSN cannot be read ({exc}); expected https://<key>@<host>/<project>"
    return None


def settings_problems():
    """One line per Sentry setting that cannot be used."""
    problems = []
    dsn = getattr(settings, "SENTRY_DSN", "")
    if dsn:
        problem = dsn_problem(dsn)
        if problem:
            problems.append(problem)
    rate = getattr(settings, "SENTRY_TRACES_SAMPLE_RATE", "0")
    try:
        valid = 0 <= float(rate) <= 1
    except (TypeError, ValueError):
        valid = False
    if not valid:
        problems.append(
            f"SENTRY_TRACES_SAMPLE_RATE={rate!r}: expected a number from 0 (tracing off) to 1, "
            "e.g. SENTRY_TRACES_SAMPLE_RATE=0.1"
        )
    return problems


def scrub_event(event, hint):
    """`before_send`: the event with secrets masked the way log rows mask them."""
    return redact(event)


def monitor_config(job):
    """The Sentry monitor of `job`, from its registry entry and the settings."""
    return {
        "schedule": {"type": "crontab", "value": job.schedule},
        "timezone": "UTC",
        # Both in whole minutes, rounded up: Sentry takes nothing finer.
        "checkin_margin": max(1, math.ceil(overdue_grace().total_seconds() / 60)),
        "max_runtime": max(1, math.ceil(job.max_runtime.total_seconds() / 60)),
    }


def enabled():
    return bool(getattr(settings, "SENTRY_DSN", ""))


def check_in(job, status, *, check_in_id, duration=None):
    """Tell the job's monitor that the run `check_in_id` is in progress, ok or failed."""
    if not enabled():
        return
    try:
        from sentry_sdk.crons import capture_checkin

        capture_checkin(
            monitor_slug=job.name,
            check_in_id=check_in_id,
            status=status,
            duration=duration,
            monitor_config=monitor_config(job),
        )
    except Exception:
        log.warning("%s: the Sentry %s check-in failed", job.name, status, exc_info=True)


def capture_failure(job, failure, *, run_id):
    """Send the exception that failed a run, tagged with the job and the run."""
    if not enabled():
        return
    try:
        import sentry_sdk

        with sentry_sdk.new_scope() as scope:
            scope.set_tag("cronType", job.name)
            scope.set_tag("runId", run_id)
            scope.capture_exception(failure)
    except Exception:
        log.warning("%s: sending the failure to Sentry failed", job.name, exc_info=True)
