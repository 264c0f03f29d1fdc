"""cleanup-daily-rooms: delete the Daily rooms of finished bookings, then forget them."""

from contextlib import closing

from django.utils import timezone

from bookings import daily
from bookings.models import Booking
from cronlogs import logger

FINISHED_STATUSES = (Booking.Status.COMPLETED, Booking.Status.CANCELLED)


def bookings_holding_rooms():
    """COMPLETED and CANCELLED bookings that still name a Daily room, oldest first."""
    return (
        Booking.objects.filter(status__in=FINISHED_STATUSES, daily_room_name__isnull=False)
        .exclude(daily_room_name="")
        .order_by("pk")
    )


def cleanup_daily_rooms(*, now, dry_run, stats, client=None):
    """Delete on Daily the room of every COMPLETED or CANCELLED booking that still holds
    one (one DELETE per room; 404 means already gone) and clear the booking's room fields.

    A room that fails keeps its booking untouched, so the next run tries it again.
    """
    rooms = list(
        bookings_holding_rooms().values_list("pk", "daily_room_name", "daily_room_url", "status")
    )
    stats.update(
        totalBookings=len(rooms),
        roomsDeleted=0,
        roomsAlreadyDeleted=0,
        roomsFailed=0,
        itemsProcessed=0,
    )
    if dry_run:
        stats["roomsToDelete"] = [name for _, name, _, _ in rooms]
        return
    # Raises ImproperlyConfigured naming DAILY_API_KEY before any room is touched.
    client = client or daily.get_client()
    # The client paces the DELETEs; the database work below runs while the next is in flight.
    with closing(client.delete_rooms([name for _, name, _, _ in rooms])) as deletions:
        for room, deletion in zip(rooms, deletions, strict=True):
            _record(room, deletion, stats)


def _record(room, deletion, stats):
    booking_id, room_name, room_url, booking_status = room
    fields = {
        "booking_id": booking_id,
        "room_name": room_name,
        "room_url": room_url,
        "booking_status": booking_status,
        "deleted_by": "cron_job",
    }
    if deletion.error:
        log_room_failure(error=deletion.error, **fields)
        stats["roomsFailed"] += 1
    else:
        forget_deleted_room(outcome=deletion.outcome, **fields)
        if deletion.outcome == daily.DeleteOutcome.DELETED:
            stats["roomsDeleted"] += 1
        else:
            stats["roomsAlreadyDeleted"] += 1
    stats["itemsProcessed"] += 1


def forget_deleted_room(*, booking_id, room_name, room_url, booking_status, deleted_by, outcome):
    """Clear a room Daily no longer has from its booking and log DAILY_ROOM_DELETED."""
    # Only if the booking still names this room: it may have been given a new one meanwhile.
    cleared = Booking.objects.filter(pk=booking_id, daily_room_name=room_name).update(
        daily_room_name=None, daily_room_url=None, updated_at=timezone.now()
    )
    logger.log_daily_room_deleted(
        room_name,
        booking_id,
        {
            "roomUrl": room_url,
            "bookingStatus": booking_status,
            "deletedBy": deleted_by,
            "alreadyDeleted": outcome == daily.DeleteOutcome.ALREADY_GONE,
            "bookingCleared": bool(cleared),
        },
    )


def log_room_failure(*, booking_id, room_name, room_url, booking_status, deleted_by, error):
    logger.log_daily_room_error(
        room_name,
        booking_id,
        error,
        {
            "operation": "delete",
            "roomUrl": room_url,
            "bookingStatus": booking_status,
            "httpStatus": error.status,
            "requestedBy": deleted_by,
        },
    )


def delete_booking_room(booking, *, deleted_by="admin"):
    """Delete `booking`'s Daily room now, whatever the booking's status (an admin action).

    Returns "deleted", "already_gone" or "no_room"; raises DailyError when Daily fails
    (after logging DAILY_ROOM_ERROR) and ImproperlyConfigured without DAILY_API_KEY.
    """
    if not booking.daily_room_name:
        return "no_room"
    room = {
        "booking_id": booking.pk,
        "room_name": booking.daily_room_name,
        "room_url": booking.daily_room_url,
        "booking_status": booking.status,
        "deleted_by": deleted_by,
    }
    try:
        outcome = daily.get_client().delete_room(booking.daily_room_name)
    except daily.DailyError as exc:
        log_room_failure(error=exc, **room)
        raise
    forget_deleted_room(outcome=outcome, **room)
    booking.refresh_from_db(fields=["daily_room_name", "daily_room_url", "updated_at"])
    return str(outcome)
