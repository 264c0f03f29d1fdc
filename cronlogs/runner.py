"""The one runner behind every way of starting a job: command, crontab, HTTP, admin.

For each run it checks the job is not paused, takes the job's lock, records the start
(CRON_STARTED, with host and pid, so a run that is killed still shows), gives the service a
`JobRun` with the job's max runtime, decides the outcome from what the service reports,
writes exactly one CRON_RUN (success or degraded) or CRON_ERROR row, and tells ADMINS when
the job's state changes. A run that cannot get going (paused, already running) writes one
CRON_SKIPPED row instead. Check-in pings, Sentry check-ins and the run counters behind the
metrics go out from `cronlogs.outside_signals`, at the start and the end of a run.

Outcomes (SPEC §9): a run fails when the service raises (a provider refusing our
credentials, a max runtime exceeded, a bug) or when it attempted items and every one failed
for a provider or system reason; it is degraded when some did; otherwise it succeeded.
"""

import os
import socket
import time
import uuid
from dataclasses import dataclass, field

from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from cronlogs import logger
from cronlogs.alerts import review_alerts
from cronlogs.jobs import get_job
from cronlogs.locks import job_lock
from cronlogs.models import Log
from cronlogs.outside_signals import OutsideSignals
from cronlogs.pausing import current_pause
from cronlogs.redaction import redact, redact_text
from cronlogs.status import State, all_job_statuses, job_status
from cronlogs.work import JobRun

TRIGGERS = ("cron", "cli", "http", "admin")


class RunStatus:
    SUCCESS = "success"
    DEGRADED = "degraded"
    ERROR = "error"
    SKIPPED = "skipped"
    DRY_RUN = "dry-run"


class SkipReason:
    ALREADY_RUNNING = "already_running"
    PAUSED = "paused"


class EveryItemFailed(Exception):
    """Every item the run attempted failed for a provider or system reason."""


@dataclass
class RunResult:
    job: str
    status: str
    trigger: str
    dry_run: bool = False
    triggered_by: str | None = None
    run_id: str | None = None
    items_processed: int = 0
    items_attempted: int = 0
    items_failed: int = 0
    duration_ms: int = 0
    start_time: str = ""
    end_time: str = ""
    stats: dict = field(default_factory=dict)
    error: str | None = None
    skip_reason: str | None = None
    skip_detail: str | None = None
    log_id: int | None = None
    details: list = field(default_factory=list)

    @property
    def failed(self):
        return self.status == RunStatus.ERROR

    def to_dict(self):
        data = {
            "success": not self.failed,
            "cronType": self.job,
            "status": self.status,
            "trigger": self.trigger,
            "triggeredBy": self.triggered_by,
            "dryRun": self.dry_run,
            "runId": self.run_id,
            "itemsProcessed": self.items_processed,
            "itemsAttempted": self.items_attempted,
            "itemsFailed": self.items_failed,
            "duration": self.duration_ms,
            "durationSeconds": round(self.duration_ms / 1000, 3),
            "startTime": self.start_time,
            "endTime": self.end_time,
            "stats": self.stats,
            "logId": self.log_id,
        }
        if self.error is not None:
            data["error"] = self.error
            data["message"] = f"Cron job {self.job} failed: {self.error}"
        if self.skip_reason is not None:
            data["skipReason"] = self.skip_reason
            data["message"] = self.summary()
        return data

    def summary(self):
        """One line for a person at a terminal."""
        if self.status == RunStatus.SKIPPED:
            return f"{self.job}: skipped, {self.skip_detail}."
        details = ", ".join(
            f"{key}={value}"
            for key, value in self.stats.items()
            if not isinstance(value, (dict, list))
        )
        head = {
            RunStatus.SUCCESS: "done",
            RunStatus.DEGRADED: f"DEGRADED ({self.items_failed} of {self.items_attempted} "
            "items failed)",
            RunStatus.DRY_RUN: "dry run, nothing changed",
            RunStatus.ERROR: "FAILED",
        }[self.status]
        line = (
            f"{self.job}: {head}; processed {self.items_processed} items "
            f"in {self.duration_ms / 1000:.2f}s"
        )
        if details:
            line += f" ({details})"
        if self.error:
            line += f"; error: {self.error}"
        if self.log_id:
            line += f" [Log #{self.log_id}]"
        return line


def run_job(name, *, trigger="cli", dry_run=False, now=None, triggered_by=None, task=None):
    """Run the job called `name` once and return what happened.

    `task`, when given, does the work instead of the job's service (an admin action that
    does part of a job's work: the same lock, log rows and alerts apply). Failures of the
    work are caught, logged and returned as an error result; database failures while
    writing the log rows propagate (nothing could be recorded).
    """
    job = get_job(name)
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}")
    run = _Run(job, trigger=trigger, dry_run=dry_run, now=now, by=triggered_by, task=task)
    if dry_run:
        # A dry run writes nothing, not even its own log row, so it needs no lock.
        return run.execute()
    pause = current_pause(job.name)
    if pause is not None:
        detail = f"paused by {pause.paused_by or 'someone'}: {pause.pause_reason}"
        return run.skip(SkipReason.PAUSED, detail, pausedBy=pause.paused_by)
    # Before taking the lock, while a previous run that died shows as interrupted.
    review_alerts([job_status(job)], only=(State.INTERRUPTED,))
    with job_lock(job.name) as acquired:
        if not acquired:
            result = run.skip(SkipReason.ALREADY_RUNNING, "another run of this job is in progress")
        else:
            result = run.execute()
    review_alerts(all_job_statuses())
    return result


class _Run:
    def __init__(self, job, *, trigger, dry_run, now, by, task):
        self.job = job
        self.trigger = trigger
        self.dry_run = dry_run
        self.now = now
        self.triggered_by = by
        self.task = task
        self.run_id = None if dry_run else uuid.uuid4().hex
        # Pings, Sentry check-ins, run counters: what the world outside hears of the run.
        # A staff action doing part of the job's work (one booking, one payout) tells the
        # world outside nothing: it says nothing of whether the job's runs do their work.
        self.signals = OutsideSignals(job, self.run_id, dry_run=dry_run or task is not None)

    def _where(self):
        return {"host": socket.gethostname(), "pid": os.getpid()}

    def _context(self, **extra):
        context = {"trigger": self.trigger, **extra}
        if self.triggered_by:
            context["triggeredBy"] = self.triggered_by
        if self.task is not None:
            context[Log.PARTIAL_RUN_KEY] = True
        return context

    def skip(self, reason, detail, **extra):
        row = logger.log_cron_skipped(
            self.job.name,
            detail,
            self._context(startTime=logger.iso_utc(timezone.now()), skipReason=reason, **extra),
        )
        result = RunResult(
            job=self.job.name,
            status=RunStatus.SKIPPED,
            trigger=self.trigger,
            triggered_by=self.triggered_by,
            skip_reason=reason,
            skip_detail=detail,
            log_id=row.pk,
        )
        self.signals.finished(result)
        return result

    def execute(self):
        stats = {}
        started = timezone.now()
        clock = time.perf_counter()
        work = None
        failure = None
        try:
            max_runtime = self.job.max_runtime
            work = JobRun(
                now=self.now or started,
                dry_run=self.dry_run,
                stats=stats,
                max_runtime=max_runtime,
                max_runtime_setting=self.job.setting_name("MAX_RUNTIME"),
            )
            if not self.dry_run:
                self._require_settings()
                logger.log_cron_started(
                    self.job.name,
                    self._context(
                        runId=self.run_id,
                        startTime=logger.iso_utc(started),
                        maxRuntimeMinutes=max_runtime.total_seconds() / 60,
                        **self._where(),
                    ),
                )
                self.signals.started()
            (self.task or self.job.function)(work)
            if work.every_attempt_failed and not self.dry_run:
                failure = EveryItemFailed(
                    f"every attempted item failed ({work.failed} of {work.attempted}) for a "
                    f"provider or system reason; the first: {work.first_failure or 'unknown'}"
                )
        except Exception as exc:
            failure = exc
        except BaseException as exc:
            # Interrupted (Ctrl-C, SIGTERM): record it, then let the interruption proceed.
            self._finish(work, stats, started, clock, exc)
            raise
        return self._finish(work, stats, started, clock, failure)

    def _require_settings(self):
        missing = self.job.missing_settings()
        if missing:
            names = " and ".join(missing)
            raise ImproperlyConfigured(
                f"{names} is not set: {self.job.name} cannot run without it. Set it in the "
                "environment (or .env), or run with --dry-run."
            )

    def _finish(self, work, stats, started, clock, failure):
        duration_ms = round((time.perf_counter() - clock) * 1000)
        items = _whole_number(stats.pop("itemsProcessed", 0))
        attempted = work.attempted if work else 0
        failed = work.failed if work else 0
        if failure:
            status = RunStatus.ERROR
        elif self.dry_run:
            status = RunStatus.DRY_RUN
        else:
            status = RunStatus.DEGRADED if failed else RunStatus.SUCCESS
        result = RunResult(
            job=self.job.name,
            status=status,
            trigger=self.trigger,
            dry_run=self.dry_run,
            triggered_by=self.triggered_by,
            run_id=self.run_id,
            items_processed=items,
            items_attempted=attempted,
            items_failed=failed,
            duration_ms=duration_ms,
            start_time=logger.iso_utc(started),
            end_time=logger.iso_utc(timezone.now()),
            stats=redact(stats),
            error=redact_text(logger.error_message(failure)) if failure else None,
            details=redact(_details(work)),
        )
        if self.dry_run:
            return result
        context = self._context(
            runId=self.run_id,
            startTime=result.start_time,
            endTime=result.end_time,
            outcome=status,
            itemsAttempted=attempted,
            itemsFailed=failed,
            **self._where(),
            **stats,
        )
        if failure:
            context.update(itemsProcessed=items, duration=duration_ms)
            row = logger.log_cron_error(self.job.name, failure, context)
        else:
            level = logger.Level.WARNING if status == RunStatus.DEGRADED else None
            row = logger.log_cron_run(self.job.name, items, duration_ms, context, level=level)
        result.log_id = row.pk
        self.signals.finished(result, failure)
        return result


def _whole_number(value):
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _details(work):
    if work is None:
        return []
    if work.details_left_out:
        return [*work.details, f"… and {work.details_left_out} more"]
    return list(work.details)
