"""Where each job stands: its one state word, and the facts behind it.

Read-only selectors behind `cron_status`, `GET /api/cron/health`, readiness, the admin Jobs
page and the alerts. A job's state is one of `State` (SPEC §9), the same word everywhere.

Every query walks the `(context->>'cronType', "createdAt")` or `(type, "createdAt")` index,
so the cost does not grow with the Log table. The table is shared with the platform's own
writers, so no row is trusted to have the shape ours have: a context that is not an object,
a `startTime` that is a number, a `duration` that is text — all read as "unknown".
"""

import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone

from cronlogs.jobs import JOBS, MAX_RUNTIME_LIMIT_MINUTES
from cronlogs.locks import advisory_lock_key
from cronlogs.logger import iso_utc
from cronlogs.models import JobState, Log
from cronlogs.schedule import describe_schedule, missed_since, next_run, validate_schedule

RECENT_RUNS = 30
DEFAULT_PAUSE_ALERT_HOURS = 24


class State(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    FAILING = "failing"
    OVERDUE = "overdue"
    STUCK = "stuck"
    INTERRUPTED = "interrupted"
    PAUSED = "paused"
    NEVER_RUN = "never-run"


UNHEALTHY_STATES = frozenset({State.FAILING, State.OVERDUE, State.STUCK, State.INTERRUPTED})


def row_context(row):
    """A row's context as a dict, whatever the row holds."""
    context = getattr(row, "context", None)
    return context if isinstance(context, dict) else {}


def context_number(row, key):
    """A numeric context value, or None when it is missing or not a number."""
    value = row_context(row).get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def context_text(row, key):
    value = row_context(row).get(key)
    return None if value is None or isinstance(value, (dict, list)) else str(value)


def context_moment(row, key):
    """An ISO-8601 timestamp in a row's context as an aware datetime, or None."""
    value = row_context(row).get(key)
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if timezone.is_aware(moment) else None


@dataclass
class CurrentRun:
    """A run that started and has not finished: running, stuck or interrupted."""

    run_id: str | None
    host: str | None
    pid: int | None
    since: datetime
    # The max runtime the run started with (its host's settings), when it recorded one.
    max_runtime: timedelta | None = None

    @property
    def where(self):
        if not self.host:
            return "an unknown host"
        return f"{self.host} (pid {self.pid})" if self.pid is not None else self.host

    def to_dict(self):
        return {"runId": self.run_id, "host": self.host, "pid": self.pid, "since": _iso(self.since)}


@dataclass
class JobStatus:
    job: object
    now: datetime
    schedule_text: str = ""
    next_run: datetime | None = None
    last_run: Log | None = None
    last_finished: Log | None = None
    current_run: CurrentRun | None = None
    running: bool | None = None
    missed_run: datetime | None = None
    pause: JobState | None = None
    configuration_problems: list = field(default_factory=list)
    recent_runs: list = field(default_factory=list)

    @property
    def name(self):
        return self.job.name

    @property
    def description(self):
        return self.job.description

    @property
    def schedule(self):
        return self.job.schedule

    @property
    def max_runtime(self):
        try:
            return self.job.max_runtime
        except ImproperlyConfigured:
            return None

    @property
    def last_status(self):
        if self.last_run is None:
            return "never run"
        return {
            Log.Type.CRON_RUN: "degraded" if self.degraded else "success",
            Log.Type.CRON_ERROR: "error",
            Log.Type.CRON_SKIPPED: "skipped",
        }.get(self.last_run.type, "unknown")

    @property
    def failing(self):
        return self.last_finished is not None and self.last_finished.type == Log.Type.CRON_ERROR

    @property
    def degraded(self):
        row = self.last_finished
        return (
            row is not None
            and row.type == Log.Type.CRON_RUN
            and context_text(row, "outcome") == "degraded"
        )

    @property
    def stuck(self):
        limit = self.run_max_runtime
        return bool(
            self.running
            and self.current_run is not None
            and limit is not None
            and self.now - self.current_run.since > limit
        )

    @property
    def run_max_runtime(self):
        """The max runtime the current run is held to: its own, else the job's."""
        if self.current_run is not None and self.current_run.max_runtime is not None:
            return self.current_run.max_runtime
        return self.max_runtime

    @property
    def interrupted(self):
        return self.current_run is not None and self.running is False

    @property
    def overdue(self):
        return self.missed_run is not None and not self.running and self.pause is None

    @property
    def paused_too_long(self):
        return self.pause is not None and self.now - self.pause.paused_at > pause_alert_after()

    @property
    def state(self):
        # The first that holds, in order: what most needs a person's eyes first.
        ladder = (
            (self.stuck, State.STUCK),
            (self.interrupted, State.INTERRUPTED),
            (self.failing, State.FAILING),
            (self.pause is not None, State.PAUSED),
            (self.overdue, State.OVERDUE),
            (self.degraded, State.DEGRADED),
            (self.last_finished is not None, State.OK),
        )
        return next((state for holds, state in ladder if holds), State.NEVER_RUN)

    @property
    def healthy(self):
        return (
            self.state not in UNHEALTHY_STATES
            and not self.paused_too_long
            and not self.configuration_problems
        )

    @property
    def problems(self):
        """What is wrong (or worth knowing), in words."""
        found = list(self.configuration_problems)
        run = self.current_run
        if self.stuck:
            found.append(
                f"stuck: the run started {_when(run.since)} on {run.where} still holds the "
                f"job's lock, past its max runtime of {_minutes(self.run_max_runtime)}"
            )
        elif self.interrupted:
            found.append(
                f"interrupted: the run started {_when(run.since)} on {run.where} never "
                "finished (killed, out of memory or the host stopped)"
            )
        if self.failing:
            error = context_text(self.last_finished, "error") or "?"
            found.append(f"last run failed: {error}")
        if self.pause is not None:
            text = (
                f"paused by {self.pause.paused_by or 'someone'} since "
                f"{_when(self.pause.paused_at)}: {self.pause.pause_reason}"
            )
            if self.paused_too_long:
                text += f" (longer than {pause_alert_after().total_seconds() / 3600:g} h)"
            found.append(text)
        if self.overdue:
            found.append(
                "never run"
                if self.last_run is None
                else f"missed its run due at {self.missed_run:%Y-%m-%d %H:%M} UTC"
            )
        if self.degraded:
            failed = context_number(self.last_finished, "itemsFailed")
            found.append(
                f"last run degraded: {failed if failed is not None else 'some'} item(s) failed"
            )
        return found

    def to_dict(self, *, detailed=True):
        """The job's status as JSON; without `detailed`, only its name, state and health
        (what an unauthenticated caller may see)."""
        brief = {"cronType": self.name, "state": self.state.value, "healthy": self.healthy}
        if not detailed:
            return brief
        limit = self.max_runtime
        return {
            **brief,
            "description": self.description,
            "schedule": self.schedule,
            "scheduleDescription": self.schedule_text,
            "maxRuntimeMinutes": None if limit is None else limit.total_seconds() / 60,
            "problems": self.problems,
            "lastRun": None if self.last_run is None else self._last_run_dict(),
            "nextRun": _iso(self.next_run),
            "running": self.running,
            "currentRun": None if self.current_run is None else self.current_run.to_dict(),
            "overdue": self.overdue,
            "missedRunDueAt": _iso(self.missed_run),
            "failing": self.failing,
            "paused": None
            if self.pause is None
            else {
                "by": self.pause.paused_by,
                "reason": self.pause.pause_reason,
                "since": _iso(self.pause.paused_at),
            },
        }

    def _last_run_dict(self):
        row = self.last_run
        return {
            "logId": row.pk,
            "type": row.type,
            "status": self.last_status,
            "at": _iso(row.created_at),
            "startTime": context_text(row, "startTime"),
            "duration": context_number(row, "duration"),
            "itemsProcessed": context_number(row, "itemsProcessed"),
            "trigger": context_text(row, "trigger"),
            "error": context_text(row, "error"),
        }


def _iso(moment):
    return None if moment is None else iso_utc(moment)


def _when(moment):
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _minutes(delta):
    return f"{delta.total_seconds() / 60:g} min"


def pause_alert_after():
    return timedelta(
        hours=getattr(settings, "CRON_PAUSE_ALERT_HOURS", None) or DEFAULT_PAUSE_ALERT_HOURS
    )


def job_status(job, *, now=None, with_recent_runs=False, first_run_at=None):
    """The status of `job` at `now`. `first_run_at` (see `tracking_since`) may be passed
    in when many jobs are looked at together."""
    now = now or timezone.now()
    history = (
        Log.objects.for_job(job.name)
        .exclude(context__has_key=Log.PARTIAL_RUN_KEY)
        .order_by("-created_at", "-id")
    )
    last_run = history.filter(type__in=Log.RUN_TYPES).first()
    last_finished = (
        last_run
        if last_run is None or last_run.type in Log.FINISHED_TYPES
        else history.filter(type__in=Log.FINISHED_TYPES).first()
    )
    last_start = history.filter(type=Log.Type.CRON_STARTED).first()
    status = JobStatus(
        job=job,
        now=now,
        last_run=last_run,
        last_finished=last_finished,
        pause=JobState.objects.filter(job=job.name, paused_at__isnull=False).first(),
        configuration_problems=job.configuration_problems(),
    )
    unfinished = _unfinished_run(last_start, last_finished)
    status.running = job_is_running(job.name, unfinished)
    status.current_run = unfinished
    if not status.configuration_problems:
        _fill_schedule(status, last_run=last_run, first_run_at=first_run_at)
    if with_recent_runs:
        finished = history.filter(type__in=Log.FINISHED_TYPES)
        status.recent_runs = list(finished[:RECENT_RUNS])[::-1]
    return status


def _fill_schedule(status, *, last_run, first_run_at):
    schedule, now = status.schedule, status.now
    try:
        validate_schedule(schedule)
        status.schedule_text = describe_schedule(schedule)
        status.next_run = next_run(schedule, after=now)
        missed = missed_since(schedule, last_started=_started_at(last_run), now=now)
    except (ValueError, KeyError) as exc:
        status.configuration_problems.append(f"schedule {schedule!r} cannot be read: {exc}")
        return
    # A job that never ran has only missed a run if the crontab was already running then.
    if missed is not None and last_run is None:
        since = first_run_at if first_run_at is not None else tracking_since()
        if since is not None and missed < since:
            missed = None
    status.missed_run = missed


def all_job_statuses(*, now=None, with_recent_runs=False):
    now = now or timezone.now()
    first_run_at = tracking_since()
    return [
        job_status(job, now=now, with_recent_runs=with_recent_runs, first_run_at=first_run_at)
        for job in JOBS.values()
    ]


def _started_at(row):
    if row is None:
        return None
    return context_moment(row, "startTime") or row.created_at


def _unfinished_run(start, finished):
    """The run `start` (the job's latest CRON_STARTED row) describes, if it has not
    written its CRON_RUN / CRON_ERROR row yet; else None."""
    if start is None:
        return None
    run_id = context_text(start, "runId")
    if finished is not None and (
        (run_id and context_text(finished, "runId") == run_id)
        or finished.created_at >= start.created_at
    ):
        return None
    pid = context_number(start, "pid")
    minutes = context_number(start, "maxRuntimeMinutes")
    return CurrentRun(
        run_id=run_id,
        host=context_text(start, "host"),
        pid=int(pid) if pid is not None else None,
        since=context_moment(start, "startTime") or start.created_at,
        max_runtime=timedelta(minutes=minutes)
        if minutes and 0 < minutes <= MAX_RUNTIME_LIMIT_MINUTES
        else None,
    )


def tracking_since():
    """When the first run still in the Log table was recorded (of any job), or None."""
    firsts = [
        Log.objects.filter(type=run_type)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
        for run_type in (*Log.RUN_TYPES, Log.Type.CRON_STARTED)
    ]
    firsts = [moment for moment in firsts if moment is not None]
    return min(firsts) if firsts else None


def job_is_running(job_name, unfinished=None):
    """True if a run of the job holds its lock right now, False if none does, None where
    that cannot be told.

    On PostgreSQL this reads pg_locks instead of trying the lock, so that looking never
    makes a real run find the lock taken. The SQLite fallback lock covers one host only,
    so there a started, unfinished run of this host counts as running while its process
    is alive.
    """
    if connection.vendor == "postgresql":
        return _advisory_lock_held(job_name)
    if unfinished is None:
        return False
    if unfinished.host != socket.gethostname() or unfinished.pid is None:
        return None
    return _process_alive(unfinished.pid)


def _advisory_lock_held(job_name):
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


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
