"""Pausing a job: while paused, every trigger of it does nothing but say so.

Staff pause a job from the admin's Jobs page, operators with `manage.py cron_pause`; each
pause and resume writes a log row naming who did it, and the pause itself (who, why,
since when) lives on the job's `JobState` row, which the runner reads before every run.
"""

from django.utils import timezone

from cronlogs import logger
from cronlogs.jobs import get_job
from cronlogs.models import JobState, Log

# Shown on the Jobs page and in every skipped run's log row: a sentence, not a document.
MAX_REASON_CHARS = 500


class PauseError(Exception):
    """The pause or resume cannot be done as asked (no reason given, not paused...)."""


def current_pause(job_name):
    """The job's JobState if it is paused, else None."""
    return JobState.objects.filter(job=job_name, paused_at__isnull=False).first()


def pause_job(job_name, *, by, reason, now=None):
    """Pause the job until someone resumes it; `reason` is required, `by` names who."""
    job = get_job(job_name)
    reason = (reason or "").strip()
    if not reason:
        raise PauseError("A reason is required to pause a job.")
    if len(reason) > MAX_REASON_CHARS:
        raise PauseError(f"The reason is too long: {MAX_REASON_CHARS} characters at most.")
    max_by = JobState._meta.get_field("paused_by").max_length
    if len(by) > max_by:
        raise PauseError(f"The name of who pauses it is too long: {max_by} characters at most.")
    if "\x00" in reason + by:
        # PostgreSQL stores no NUL character; the write would fail with a database error.
        raise PauseError("The reason and the name may not contain NUL characters.")
    now = now or timezone.now()
    JobState.objects.get_or_create(job=job.name)
    # Pausing a paused job keeps the first pause's time, so "paused for N hours" stays true.
    already = JobState.objects.filter(job=job.name, paused_at__isnull=False).exists()
    updates = {"paused_by": by, "pause_reason": reason}
    if not already:
        updates["paused_at"] = now
    JobState.objects.filter(job=job.name).update(**updates)
    logger.write_log(
        type=Log.Type.CRON_PAUSED,
        status=Log.Status.SUCCESS,
        level=Log.Level.WARNING,
        message=f"Cron job paused: {job.name} by {by}: {reason}",
        context={"cronType": job.name, "pausedBy": by, "reason": reason},
    )
    return JobState.objects.get(job=job.name)


def resume_job(job_name, *, by):
    """Resume a paused job; the next trigger runs it again."""
    job = get_job(job_name)
    state = current_pause(job.name)
    if state is None:
        raise PauseError(f"{job.name} is not paused.")
    JobState.objects.filter(job=job.name).update(paused_at=None, paused_by="", pause_reason="")
    logger.write_log(
        type=Log.Type.CRON_RESUMED,
        status=Log.Status.SUCCESS,
        level=Log.Level.INFO,
        message=f"Cron job resumed: {job.name} by {by}",
        context={
            "cronType": job.name,
            "resumedBy": by,
            "pausedBy": state.paused_by,
            "pausedAt": logger.iso_utc(state.paused_at),
            "reason": state.pause_reason,
        },
    )
