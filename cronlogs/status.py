"""Where each job stands: last run, next run, overdue, failing, recent durations.

Read-only selectors behind `cron_status`, `GET /api/cron/health` and the admin Jobs page.
Every query walks the `(context->>'cronType', "createdAt")` or `(type, "createdAt")` index,
so the cost does not grow with the size of the Log table.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection
from django.utils import timezone

from cronlogs.jobs import JOBS
from cronlogs.locks import advisory_lock_key
from cronlogs.models import Log
from cronlogs.schedule import describe_schedule, missed_since, next_run

FINISHED_TYPES = (Log.Type.CRON_RUN, Log.Type.CRON_ERROR)
RECENT_RUNS = 30

# Settings a job cannot run without; readiness reports their names, never their values.
REQUIRED_SETTINGS = {
    "process-payouts": ("STRIPE_SECRET_KEY",),
    "process-automatic-payouts": ("STRIPE_SECRET_KEY",),
    "cleanup-daily-rooms": ("DAILY_API_KEY",),
}


@dataclass
class JobStatus:
    name: str
    description: str
    schedule: str
    schedule_text: str
    next_run: datetime
    last_run: Log | None = None
    last_finished: Log | None = None
    missed_run: datetime | None = None
    running: bool | None = None
    recent_runs: list = field(default_factory=list)

    @property
    def last_status(self):
        if self.last_run is None:
            return "never run"
        return {
            Log.Type.CRON_RUN: "success",
            Log.Type.CRON_ERROR: "error",
            Log.Type.CRON_SKIPPED: "skipped",
        }[self.last_run.type]

    @property
    def failing(self):
        return self.last_finished is not None and self.last_finished.type == Log.Type.CRON_ERROR

    @property
    def overdue(self):
        return self.missed_run is not None and not self.running

    @property
    def healthy(self):
        return not (self.overdue or self.failing)

    @property
    def problems(self):
        found = []
        if self.failing:
            found.append(f"last run failed: {self.last_finished.context.get('error', '?')}")
        if self.overdue:
            found.append(
                "never run"
                if self.last_run is None
                else f"missed its run due at {self.missed_run:%Y-%m-%d %H:%M} UTC"
            )
        return found

    def last_context(self, key):
        return None if self.last_run is None else self.last_run.context.get(key)

    def to_dict(self):
        return {
            "cronType": self.name,
            "description": self.description,
            "schedule": self.schedule,
            "scheduleDescription": self.schedule_text,
            "lastRun": None
            if self.last_run is None
            else {
                "logId": self.last_run.pk,
                "type": self.last_run.type,
                "status": self.last_status,
                "at": _iso(self.last_run.created_at),
                "startTime": self.last_context("startTime"),
                "duration": self.last_context("duration"),
                "itemsProcessed": self.last_context("itemsProcessed"),
                "trigger": self.last_context("trigger"),
                "error": self.last_context("error"),
            },
            "nextRun": _iso(self.next_run),
            "running": self.running,
            "overdue": self.overdue,
            "missedRunDueAt": _iso(self.missed_run) if self.missed_run else None,
            "failing": self.failing,
            "healthy": self.healthy,
            "problems": self.problems,
        }


def _iso(moment):
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def job_status(job, *, now=None, with_recent_runs=False):
    now = now or timezone.now()
    history = Log.objects.for_job(job.name).order_by("-created_at", "-id")
    last_run = history.filter(type__in=Log.RUN_TYPES).first()
    last_finished = (
        last_run
        if last_run is None or last_run.type in FINISHED_TYPES
        else history.filter(type__in=FINISHED_TYPES).first()
    )
    status = JobStatus(
        name=job.name,
        description=job.description,
        schedule=job.schedule,
        schedule_text=describe_schedule(job.schedule),
        next_run=next_run(job.schedule, after=now),
        last_run=last_run,
        last_finished=last_finished,
        running=job_is_running(job.name),
    )
    missed = missed_since(job.schedule, last_started=_started_at(last_run), now=now)
    # A job that never ran has only missed a run if the crontab was already running then.
    if missed is not None and last_run is None:
        since = tracking_since()
        if since is not None and missed < since:
            missed = None
    status.missed_run = missed
    if with_recent_runs:
        status.recent_runs = list(history.filter(type__in=FINISHED_TYPES)[:RECENT_RUNS])[::-1]
    return status


def all_job_statuses(*, now=None, with_recent_runs=False):
    now = now or timezone.now()
    return [job_status(job, now=now, with_recent_runs=with_recent_runs) for job in JOBS.values()]


def _started_at(row):
    if row is None:
        return None
    started = row.context.get("startTime")
    if started:
        try:
            return datetime.fromisoformat(started.replace("Z", "+00:00"))
        except (TypeError, ValueError):
            pass
    return row.created_at


def tracking_since():
    """When the first run still in the Log table was recorded (of any job), or None."""
    firsts = [
        Log.objects.filter(type=run_type)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
        for run_type in Log.RUN_TYPES
    ]
    firsts = [moment for moment in firsts if moment is not None]
    return min(firsts) if firsts else None


def job_is_running(job_name):
    """True if a run of the job holds its lock right now; None where that cannot be seen.

    On PostgreSQL this reads pg_locks instead of trying the lock, so that looking never
    makes a real run find the lock taken.
    """
    if connection.vendor != "postgresql":
        return None
    key = advisory_lock_key(job_name)
    # A bigint advisory key shows in pg_locks as classid (high 32 bits), objid (low 32 bits).
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1 AND database = ("
            "SELECT oid FROM pg_database WHERE datname = current_database()))",
            [unsigned >> 32, unsigned & 0xFFFFFFFF],
        )
        return cursor.fetchone()[0]
