"""Email ADMINS when a job starts failing and when it recovers, never on every failure."""

import logging

from django.core.mail import mail_admins

from cronlogs.models import Log

logger = logging.getLogger(__name__)


def previous_outcome(job_name):
    """The type (CRON_RUN or CRON_ERROR) of the job's last finished run, or None."""
    return (
        Log.objects.for_job(job_name)
        .filter(type__in=[Log.Type.CRON_RUN, Log.Type.CRON_ERROR])
        .order_by("-created_at", "-id")
        .values_list("type", flat=True)
        .first()
    )


def alert_on_state_change(job_name, *, failed, previous, result_text):
    """Send the alert if this run changed the job's state; return what was sent (or None)."""
    if failed and previous != Log.Type.CRON_ERROR:
        subject = f"Cron job {job_name} is failing"
    elif not failed and previous == Log.Type.CRON_ERROR:
        subject = f"Cron job {job_name} has recovered"
    else:
        return None
    try:
        mail_admins(subject, result_text)
    except Exception:
        # An alert that cannot be sent must not turn a run into a failure.
        logger.exception("Could not email ADMINS about %s", job_name)
        return None
    return subject
