"""The unified logger: one function per event, each writing one row to the "Log" table.

Names, arguments and context keys follow the platform's `lib/logger.ts` (camelCase keys,
durations in milliseconds) so that existing SQL and dashboards keep working.
"""

import traceback
from datetime import UTC

from cronlogs.models import Log
from cronlogs.redaction import configured_secrets, redact

Type, Status, Level = Log.Type, Log.Status, Log.Level


def write_log(*, type, status, level, message, context=None, error=None, save=True):
    """Write one row, with secrets masked in every field.

    With `save=False` the row is returned unsaved, for a job that writes many rows with
    one `Log.objects.bulk_create()`.
    """
    secrets = configured_secrets()
    row = Log(
        type=type,
        status=status,
        level=level,
        message=redact(message, secrets),
        context=redact(dict(context or {}), secrets),
        error=redact(error, secrets) if error else None,
    )
    if save:
        row.save(force_insert=True)
    return row


def error_message(error):
    """A one-line description of an exception (or a plain string)."""
    if isinstance(error, BaseException):
        text = str(error) or type(error).__name__
        return text if text.startswith(type(error).__name__) else f"{type(error).__name__}: {text}"
    return str(error)


def error_detail(error):
    """The traceback of an exception that has one, else its one-line description."""
    if isinstance(error, BaseException) and error.__traceback__ is not None:
        return "".join(traceback.format_exception(error))
    return error_message(error)


def iso_utc(moment):
    """An aware datetime as the logs write it: ISO-8601 in UTC with a "Z"."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def duration_fields(duration_ms):
    return {"duration": int(duration_ms), "durationSeconds": round(duration_ms / 1000, 3)}


def log_cron_run(cron_type, items_processed, duration, additional_context=None, *, level=None):
    """A finished run; `level` WARNING for a degraded one (some items failed)."""
    seconds = duration / 1000
    return write_log(
        type=Type.CRON_RUN,
        status=Status.SUCCESS,
        level=level or Level.INFO,
        message=(
            f"Cron job completed: {cron_type} (processed {items_processed} items in {seconds:.2f}s)"
        ),
        context={
            "cronType": cron_type,
            "itemsProcessed": items_processed,
            **duration_fields(duration),
            **(additional_context or {}),
        },
    )


def succeeded(type, message, keys, additional_context=None, *, level=Level.INFO, save=True):
    """A row of status SUCCESS: `keys` first in its context, then the additional context."""
    return write_log(
        save=save,
        type=type,
        status=Status.SUCCESS,
        level=level,
        message=message,
        context={**keys, **(additional_context or {})},
    )


def failed(type, message, keys, error, additional_context=None, *, level=Level.ERROR, save=True):
    """A row of status ERROR: the message ends with the error's one-line description,
    the context holds it as `error`, and the row's `error` its traceback (if any)."""
    return write_log(
        save=save,
        type=type,
        status=Status.ERROR,
        level=level,
        message=f"{message}: {error_message(error)}",
        context={**keys, **(additional_context or {}), "error": error_message(error)},
        error=error_detail(error),
    )


def log_cron_error(cron_type, error, additional_context=None):
    context = dict(additional_context or {})
    if "duration" in context:
        context.update(duration_fields(context["duration"]))
    return failed(
        Type.CRON_ERROR, f"Cron job failed: {cron_type}", {"cronType": cron_type}, error, context
    )


def log_cron_started(cron_type, additional_context=None):
    """A run that holds its job's lock and is about to start work."""
    context = additional_context or {}
    where = f" on {context['host']} (pid {context['pid']})" if "host" in context else ""
    return succeeded(
        Type.CRON_STARTED, f"Cron job started: {cron_type}{where}", {"cronType": cron_type}, context
    )


def log_cron_skipped(cron_type, reason, additional_context=None):
    return succeeded(
        Type.CRON_SKIPPED,
        f"Cron job skipped: {cron_type} ({reason})",
        {"cronType": cron_type, "reason": reason},
        additional_context,
        level=Level.WARNING,
    )


def log_cron_ping_failed(cron_type, ping, error, additional_context=None):
    """A check-in ping (`cronlogs.pings`) that did not get through; the run is not affected."""
    return write_log(
        type=Type.CRON_PING_FAILED,
        status=Status.ERROR,
        level=Level.WARNING,
        message=f"Check-in ping failed: {cron_type} {ping}: {error}",
        context={"cronType": cron_type, "ping": ping, **(additional_context or {}), "error": error},
    )


def log_alert_failed(cron_type, subject, error):
    """An alert to ADMINS (`cronlogs.alerts`) that could not be sent; it is tried again."""
    return write_log(
        type=Type.EMAIL_ERROR,
        status=Status.ERROR,
        level=Level.ERROR,
        message=f"Alert email failed: {subject}: {error_message(error)}",
        context={
            "cronType": cron_type,
            "emailType": "cron_alert",
            "subject": subject,
            "error": error_message(error),
            "willRetry": True,
        },
    )


def _about_email(booking_id, user_id, email_type):
    return {"bookingId": booking_id, "userId": user_id, "emailType": email_type}


def log_email_sent(booking_id, user_id, email_type, additional_context=None, save=True):
    message = f"Email sent: {email_type} for booking {booking_id}"
    keys = _about_email(booking_id, user_id, email_type)
    return succeeded(Type.EMAIL_SENT, message, keys, additional_context, save=save)


def log_email_error(booking_id, user_id, email_type, error, additional_context=None, save=True):
    message = f"Email failed: {email_type} for booking {booking_id}"
    keys = _about_email(booking_id, user_id, email_type)
    return failed(Type.EMAIL_ERROR, message, keys, error, additional_context, save=save)


def log_daily_room_deleted(room_id, booking_id, additional_context=None, save=True):
    message = f"Daily room deleted: {room_id} (booking {booking_id})"
    keys = {"roomId": room_id, "bookingId": booking_id}
    return succeeded(Type.DAILY_ROOM_DELETED, message, keys, additional_context, save=save)


def log_daily_room_error(room_id, booking_id, error, additional_context=None, save=True):
    message = f"Daily room error: {room_id} (booking {booking_id})"
    keys = {"roomId": room_id, "bookingId": booking_id}
    return failed(Type.DAILY_ROOM_ERROR, message, keys, error, additional_context, save=save)


def log_payout_success(payout_id, creator_id, additional_context=None):
    message = f"Payout {payout_id} for creator {creator_id} succeeded"
    keys = {"payoutId": payout_id, "creatorId": creator_id}
    return succeeded(Type.PAYOUT_SUCCESS, message, keys, additional_context)


def log_payout_error(payout_id, creator_id, error, additional_context=None, level=Level.ERROR):
    message = f"Payout {payout_id} for creator {creator_id} failed"
    keys = {"payoutId": payout_id, "creatorId": creator_id}
    return failed(Type.PAYOUT_ERROR, message, keys, error, additional_context, level=level)
