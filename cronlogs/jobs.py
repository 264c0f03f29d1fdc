"""The job registry: every fact about a scheduled job, in one entry.

An entry names the job (its `cronType`), the service that does its work, what it does,
its default schedule and max runtime, and the settings it cannot run without. Everything
else derives from it: `settings.CRONJOBS`, each command's `--help`, `cron_status`, the
admin's Jobs page, readiness, health and the demo. Settings only override a default, one
environment variable each:

    CRON_SCHEDULE_<JOB>      a five-field cron expression: "0 4 * * *"
    CRON_MAX_RUNTIME_<JOB>   minutes, fractions allowed: 0.1
    CRON_PING_URL_<JOB>      a check-in URL (cronlogs.pings): https://hc-ping.com/<uuid>

`cronlogs.checks` validates every override at start-up. A job's service has the signature
`service(run)`, where `run` is a `cronlogs.work.JobRun`.

This module is read by `callastar/settings.py` (to build CRONJOBS), so it must not touch
Django settings or models at import time.
"""

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from cronlogs.schedule import validate_schedule

# A max runtime longer than this is a typo, not a plan: a week.
MAX_RUNTIME_LIMIT_MINUTES = 7 * 24 * 60


class UnknownJobError(KeyError):
    def __str__(self):
        return f"Unknown job {self.args[0]!r}; known jobs: {', '.join(JOBS)}"


@dataclass(frozen=True)
class Job:
    name: str
    service: str
    description: str
    default_schedule: str
    default_max_runtime_minutes: float
    required_settings: tuple[str, ...] = ()

    def setting_name(self, kind):
        """The environment variable (and setting) overriding `kind` of this job's
        defaults: setting_name("SCHEDULE") -> "CRON_SCHEDULE_CLEANUP_LOGS"."""
        return f"CRON_{kind}_{self.name.upper().replace('-', '_')}"

    def _override(self, kind, values=None):
        """The override of `kind` in `values` (a mapping of setting names, as settings.py
        holds them while it is being built), or in Django's settings; None if unset."""
        name = self.setting_name(kind)
        value = values.get(name) if values is not None else getattr(settings, name, None)
        return None if value in (None, "") else value

    def schedule_in(self, values=None):
        return self._override("SCHEDULE", values) or self.default_schedule

    @property
    def schedule(self):
        return self.schedule_in()

    def max_runtime_in(self, values=None):
        """How long a run may take before it stops taking new items (a timedelta).

        Raises ImproperlyConfigured, naming the variable, for an override that is not a
        positive number of minutes.
        """
        value = self._override("MAX_RUNTIME", values)
        minutes = self.default_max_runtime_minutes if value is None else value
        try:
            minutes = float(minutes)
        except (TypeError, ValueError):
            minutes = None
        if minutes is None or not 0 < minutes <= MAX_RUNTIME_LIMIT_MINUTES:
            name = self.setting_name("MAX_RUNTIME")
            raise ImproperlyConfigured(
                f"{name}={value!r}: expected a number of minutes greater than 0 and at most "
                f"{MAX_RUNTIME_LIMIT_MINUTES}, e.g. {name}=0.5"
            )
        return timedelta(minutes=minutes)

    @property
    def max_runtime(self):
        return self.max_runtime_in()

    @property
    def ping_url(self):
        return getattr(settings, self.setting_name("PING_URL"), "") or ""

    @property
    def function(self):
        return import_string(self.service)

    def missing_settings(self):
        """The required settings that are not set (names only, never values)."""
        return [name for name in self.required_settings if not getattr(settings, name, "")]

    def configuration_problems(self, values=None):
        """One line per bad override of this job's schedule, max runtime or ping URL (in
        `values` while settings are being built, else in Django's settings)."""
        problems = []
        schedule = self.schedule_in(values)
        try:
            validate_schedule(schedule)
        except ValueError as exc:
            problems.append(f"{self.setting_name('SCHEDULE')}={schedule!r}: {exc}")
        try:
            self.max_runtime_in(values)
        except ImproperlyConfigured as exc:
            problems.append(str(exc))
        ping_url = self._override("PING_URL", values)
        if ping_url and not _is_http_url(ping_url):
            # Never the value: the URL is a credential.
            problems.append(
                f"{self.setting_name('PING_URL')}: expected an http:// or https:// URL, e.g. "
                f"{self.setting_name('PING_URL')}=https://hc-ping.com/<uuid>"
            )
        return problems


def _is_http_url(url):
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


JOBS = {
    job.name: job
    for job in (
        Job(
            name="cleanup-logs",
            service="cronlogs.retention.cleanup_logs",
            description="Deletes old log rows: INFO after 30 days, WARNING after 60, ERROR "
            "after 90; CRITICAL rows are kept.",
            default_schedule="0 3 * * *",
            default_max_runtime_minutes=30,
        ),
        Job(
            name="process-payouts",
            service="payouts.processing.process_payouts",
            description="Pays the payouts staff approved on Stripe and settles the ones in flight.",
            default_schedule="0 * * * *",
            default_max_runtime_minutes=45,
            required_settings=("STRIPE_SECRET_KEY",),
        ),
        Job(
            name="process-automatic-payouts",
            service="payouts.automatic.process_automatic_payouts",
            description="Pays out the available balance of creators on a daily or weekly schedule.",
            default_schedule="0 1 * * *",
            default_max_runtime_minutes=60,
            required_settings=("STRIPE_SECRET_KEY",),
        ),
        Job(
            name="cleanup-daily-rooms",
            service="bookings.room_cleanup.cleanup_daily_rooms",
            description="Deletes the Daily.co video rooms of completed and cancelled bookings.",
            default_schedule="0 * * * *",
            default_max_runtime_minutes=45,
            required_settings=("DAILY_API_KEY",),
        ),
        Job(
            name="reconcile-payouts",
            service="payouts.reconciliation.reconcile_payouts",
            description="Matches our payouts to the Stripe payouts of each connected account.",
            default_schedule="0 4 * * *",
            default_max_runtime_minutes=60,
            required_settings=("STRIPE_SECRET_KEY",),
        ),
        Job(
            name="send-booking-reminders",
            service="bookings.reminders.send_due_reminders",
            description="Emails the client and the creator 15 minutes before their call.",
            default_schedule="*/5 * * * *",
            default_max_runtime_minutes=4,
        ),
    )
}


def get_job(name):
    try:
        return JOBS[name]
    except KeyError:
        raise UnknownJobError(name) from None


def cronjobs(overrides):
    """django-crontab's CRONJOBS: one line per job, through the shared runner.

    `overrides` maps setting names to values (settings.py passes its own globals, as
    `Job.schedule` cannot read settings while they are being built).
    """
    return [
        (
            overrides.get(job.setting_name("SCHEDULE")) or job.default_schedule,
            "cronlogs.crontab.run_scheduled_job",
            [job.name],
        )
        for job in JOBS.values()
    ]
