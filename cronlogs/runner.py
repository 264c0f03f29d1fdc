"""The one runner behind every way of starting a job: command, crontab, HTTP, admin.

For each run it takes the job's lock, times the job, writes exactly one log row
(CRON_RUN, CRON_ERROR or CRON_SKIPPED) and emails ADMINS when the job's state changes.
"""

import time
from dataclasses import dataclass, field
from datetime import UTC

from django.utils import timezone

from cronlogs import logger
from cronlogs.alerts import alert_on_state_change, previous_outcome
from cronlogs.jobs import get_job
from cronlogs.locks import job_lock
from cronlogs.redaction import redact_text

TRIGGERS = ("cron", "cli", "http", "admin")


class RunStatus:
    SUCCESS = "success"
    ERROR = "error"
    SKIPPED = "skipped"
    DRY_RUN = "dry-run"


@dataclass
class RunResult:
    job: str
    status: str
    trigger: str
    dry_run: bool = False
    items_processed: int = 0
    duration_ms: int = 0
    start_time: str = ""
    end_time: str = ""
    stats: dict = field(default_factory=dict)
    error: str | None = None
    log_id: int | None = None
    alert: str | None = None

    @property
    def failed(self):
        return self.status == RunStatus.ERROR

    def to_dict(self):
        data = {
            "success": not self.failed,
            "cronType": self.job,
            "status": self.status,
            "trigger": self.trigger,
            "dryRun": self.dry_run,
            "itemsProcessed": self.items_processed,
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
        return data

    def summary(self):
        """One line for a person at a terminal."""
        if self.status == RunStatus.SKIPPED:
            return f"{self.job}: skipped, another run of this job is in progress."
        details = ", ".join(
            f"{key}={value}"
            for key, value in self.stats.items()
            if not isinstance(value, (dict, list))
        )
        head = {
            RunStatus.SUCCESS: "done",
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


def iso_utc(moment):
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def run_job(name, *, trigger="cli", dry_run=False, now=None):
    """Run the job called `name` once and return what happened.

    Failures of the job itself are caught, logged and returned as an error result;
    database failures while writing the log row propagate (nothing could be recorded).
    """
    job = get_job(name)
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}")
    if dry_run:
        # A dry run writes nothing, not even its own log row, so it needs no lock.
        return _execute(job, trigger=trigger, dry_run=True, now=now)
    with job_lock(job.name) as acquired:
        if not acquired:
            row = logger.log_cron_skipped(
                job.name,
                "already running",
                {"trigger": trigger, "startTime": iso_utc(timezone.now())},
            )
            return RunResult(job=job.name, status=RunStatus.SKIPPED, trigger=trigger, log_id=row.pk)
        return _execute(job, trigger=trigger, dry_run=False, now=now)


def _execute(job, *, trigger, dry_run, now):
    stats = {}
    started = timezone.now()
    clock = time.perf_counter()
    failure = None
    try:
        job.function(now=now or started, dry_run=dry_run, stats=stats)
    except Exception as exc:
        failure = exc
    except BaseException as exc:
        # Interrupted (Ctrl-C, SIGTERM): record it, then let the interruption proceed.
        _finish(job, stats, started, clock, trigger, dry_run, exc)
        raise
    return _finish(job, stats, started, clock, trigger, dry_run, failure)


def _finish(job, stats, started, clock, trigger, dry_run, failure):
    duration_ms = round((time.perf_counter() - clock) * 1000)
    items = int(stats.pop("itemsProcessed", 0) or 0)
    result = RunResult(
        job=job.name,
        status=RunStatus.ERROR
        if failure
        else (RunStatus.DRY_RUN if dry_run else RunStatus.SUCCESS),
        trigger=trigger,
        dry_run=dry_run,
        items_processed=items,
        duration_ms=duration_ms,
        start_time=iso_utc(started),
        end_time=iso_utc(timezone.now()),
        stats=stats,
        error=redact_text(logger.error_message(failure)) if failure else None,
    )
    if dry_run:
        return result
    context = {
        "startTime": result.start_time,
        "endTime": result.end_time,
        "trigger": trigger,
        **stats,
    }
    previous = previous_outcome(job.name)
    if failure:
        context.update(itemsProcessed=items, duration=duration_ms)
        row = logger.log_cron_error(job.name, failure, context)
    else:
        row = logger.log_cron_run(job.name, items, duration_ms, context)
    result.log_id = row.pk
    result.alert = alert_on_state_change(
        job.name, failed=bool(failure), previous=previous, result_text=_alert_text(result, row)
    )
    return result


def _alert_text(result, row):
    lines = [result.summary(), "", f"Log row: #{row.pk}", f"Started: {result.start_time}"]
    if row.error:
        lines += ["", row.error]
    return redact_text("\n".join(lines))
