"""Email ADMINS when a job's state changes: once when it goes wrong, once when it recovers.

The state is the one `cronlogs.status` computes (failing, stuck, interrupted, overdue,
paused too long). What ADMINS were last told is kept on the job's `JobState` row and moved
with a conditional UPDATE, so however many processes notice a change at the same moment —
the run itself, the next run, the health endpoint, `cron_status` — one email goes out.
"""

import logging

from django.core.mail import mail_admins
from django.utils import timezone

from cronlogs.logger import log_alert_failed
from cronlogs.models import JobState
from cronlogs.redaction import redact_text
from cronlogs.status import UNHEALTHY_STATES, State

logger = logging.getLogger(__name__)

SUBJECTS = {
    State.FAILING: "is failing",
    State.STUCK: "is stuck",
    State.INTERRUPTED: "was interrupted",
    State.OVERDUE: "is overdue",
    State.PAUSED: "has been paused too long",
}
RECOVERED_FROM = (State.OK, State.DEGRADED)


def review_alerts(statuses, *, only=None, now=None):
    """Alert on every job in `statuses` whose state changed (to one of `only`, when
    given); return the subjects sent."""
    sent = [
        alert_on_state_change(status, now=now)
        for status in statuses
        if only is None or status.state in only
    ]
    return [subject for subject in sent if subject]


def alert_on_state_change(status, *, now=None):
    """Email ADMINS if `status` differs from what they were last told; return the
    subject sent, or None."""
    if status.state in UNHEALTHY_STATES or (status.state == State.PAUSED and not status.healthy):
        wanted = status.state.value
    elif status.state in RECOVERED_FROM:
        # "Recovered" only after a run that did not fail, not on a pause or a reset.
        wanted = ""
    else:
        return None
    told = JobState.objects.get_or_create(job=status.name)[0].alerted_state
    if told == wanted:
        return None
    won = JobState.objects.filter(job=status.name, alerted_state=told).update(
        alerted_state=wanted, alerted_at=now or timezone.now()
    )
    if not won:
        return None  # Another process noticed the same change and sent the email.
    subject = (
        f"Cron job {status.name} {SUBJECTS[State(wanted)]}"
        if wanted
        else f"Cron job {status.name} has recovered"
    )
    try:
        mail_admins(subject, _body(status))
    except Exception as exc:
        # An alert that cannot be sent must not turn a run into a failure; it is owed
        # still, so the next review (the next run, or health check) tries again.
        JobState.objects.filter(job=status.name, alerted_state=wanted).update(alerted_state=told)
        logger.exception("Could not email ADMINS about %s", status.name)
        log_alert_failed(status.name, subject, exc)
        return None
    return subject


def _body(status):
    lines = [f"{status.name}: {status.state.value}", ""]
    lines += [f"- {problem}" for problem in status.problems] or ["- no problem left"]
    row = status.last_finished
    if row is not None:
        lines += ["", f"Last finished run: Log #{row.pk} ({row.type}) at {row.created_at}"]
        lines.append(row.message)
        if row.error:
            lines += ["", row.error]
    return redact_text("\n".join(lines))
