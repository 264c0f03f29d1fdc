"""The unified logger: one function per event, each writing one row to the "Log" table.

Names, arguments and context keys follow the platform's `lib/logger.ts` (camelCase keys,
durations in milliseconds) so that existing SQL and dashboards keep working.
"""

import traceback
from datetime import UTC

from cronlogs.models import Log
from cronlogs.redaction import redact

Type, Status, Level = Log.Type, Log.Status, Log.Level


def write_log(*, type, status, level, message, context=None, error=None, save=True):
    """Write one row, with secrets masked in every field.

    With `save=False` the row is returned unsaved, for a job that writes many rows with
    one `Log.objects.bulk_create()`.
    """
    row = Log(
        type=type,
        status=status,
        level=level,
        message=redact(message),
        context=redact(dict(context or {})),
        error=redact(error) if error else None,
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


def log_cron_error(cron_type, error, additional_context=None):
    context = {"cronType": cron_type, **(additional_context or {}), "error": error_message(error)}
    if "duration" in context:
        context.update(duration_fields(context["duration"]))
    return write_log(
        type=Type.CRON_ERROR,
        status=Status.ERROR,
        level=Level.ERROR,
        message=f"Cron job failed: {cron_type}: {error_message(error)}",
        context=context,
        error=error_detail(error),
    )


def log_cron_started(cron_type, additional_context=None):
    """A run that holds its job's lock and is about to start work."""
    context = {"cronType": cron_type, **(additional_context or {})}
    where = f" on {context['host']} (pid {context['pid']})" if "host" in context else ""
    return write_log(
        type=Type.CRON_STARTED,
        status=Status.SUCCESS,
        level=Level.INFO,
        message=f"Cron job started: {cron_type}{where}",
        context=context,
    )


def log_cron_skipped(cron_type, reason, additional_context=None):
    return write_log(
        type=Type.CRON_SKIPPED,
        status=Status.SUCCESS,
        level=Level.WARNING,
        message=f"Cron job skipped: {cron_type} ({reason})",
        context={"cronType": cron_type, "reason": reason, **(additional_context or {})},
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


def log_email_sent(booking_id, user_id, email_type, additional_context=None, save=True):
    return write_log(
        save=save,
        type=Type.EMAIL_SENT,
        status=Status.SUCCESS,
        level=Level.INFO,
        message=f"Email sent: {email_type} for booking {booking_id}",
        context={
            "bookingId": booking_id,
            "userId": user_id,
            "emailType": email_type,
            **(additional_context or {}),
        },
    )


def log_email_error(booking_id, user_id, email_type, error, additional_context=None, save=True):
    return write_log(
        save=save,
        type=Type.EMAIL_ERROR,
        status=Status.ERROR,
        level=Level.ERROR,
        message=f"Email failed: {email_type} for booking {booking_id}: {error_message(error)}",
        context={
            "bookingId": booking_id,
            "userId": user_id,
            "emailType": email_type,
            **(additional_context or {}),
            "error": error_message(error),
        },
        error=error_detail(error),
    )


def log_daily_room_deleted(room_id, booking_id, additional_context=None, save=True):
    return write_log(
        save=save,
        type=Type.DAILY_ROOM_DELETED,
        status=Status.SUCCESS,
        level=Level.INFO,
        message=f"Daily room deleted: {room_id} (booking {booking_id})",
        context={"roomId": room_id, "bookingId": booking_id, **(additional_context or {})},
    )


def log_daily_room_error(room_id, booking_id, error, additional_context=None, save=True):
    return write_log(
        save=save,
        type=Type.DAILY_ROOM_ERROR,
        status=Status.ERROR,
        level=Level.ERROR,
        message=f"Daily room error: {room_id} (booking {booking_id}): {error_message(error)}",
        context={
            "roomId": room_id,
            "bookingId": booking_id,
            **(additional_context or {}),
            "error": error_message(error),
        },
        error=error_detail(error),
    )


def log_payout_success(payout_id, creator_id, additional_context=None):
    return write_log(
        type=Type.PAYOUT_SUCCESS,
        status=Status.SUCCESS,
        level=Level.INFO,
        message=f"Payout {payout_id} for creator {creator_id} succeeded",
        context={"payoutId": payout_id, "creatorId": creator_id, **(additional_context or {})},
    )


def log_payout_error(payout_id, creator_id, error, additional_context=None, level=Level.ERROR):
    return write_log(
        type=Type.PAYOUT_ERROR,
        status=Status.ERROR,
        level=level,
        message=f"Payout {payout_id} for creator {creator_id} failed: {error_message(error)}",
        context={
            "payoutId": payout_id,
            "creatorId": creator_id,
            **(additional_context or {}),
            "error": error_message(error),
        },
        error=error_detail(error),
    )
