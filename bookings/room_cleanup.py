"""cleanup-daily-rooms: delete the Daily rooms of finished bookings, then forget them."""

from contextlib import closing

from django.utils import timezone

from bookings import daily
from bookings.models import Booking
from cronlogs import logger
from cronlogs.work import ItemOutcome, append_capped

FINISHED_STATUSES = (Booking.Status.COMPLETED, Booking.Status.CANCELLED)
ROOM_FIELDS = ("pk", "daily_room_name", "daily_room_url", "status")


def bookings_holding_rooms():
    """COMPLETED and CANCELLED bookings that still name a Daily room, oldest first."""
    return (
        Booking.objects.filter(status__in=FINISHED_STATUSES, daily_room_name__isnull=False)
        .exclude(daily_room_name="")
        .order_by("pk")
    )


def cleanup_daily_rooms(run):
    """Delete on Daily the room of every COMPLETED or CANCELLED booking that still holds
    one (one DELETE per room; 404 means already gone) and clear the booking's room fields.

    A room that fails keeps its booking untouched, so the next run tries it again.
    """
    rooms = list(bookings_holding_rooms().values_list(*ROOM_FIELDS))
    delete_rooms_of(rooms, run=run, deleted_by="cron_job")


def delete_booking_rooms(run, *, booking_ids, deleted_by="admin"):
    """Delete the rooms of the given bookings whatever their status (the admin's "delete
    Daily room"), with the same requests, log rows and outcomes as the job."""
    rooms = list(
        Booking.objects.filter(pk__in=list(booking_ids), daily_room_name__isnull=False)
        .exclude(daily_room_name="")
        .order_by("pk")
        .values_list(*ROOM_FIELDS)
    )
    run.stats["withoutRoom"] = len(set(booking_ids)) - len(rooms)
    delete_rooms_of(rooms, run=run, deleted_by=deleted_by)


def delete_rooms_of(rooms, *, run, deleted_by):
    """Delete each (booking id, room name, room url, booking status) of `rooms` on Daily,
    or, in a dry run, list what would be deleted."""
    stats = run.stats
    stats.update(
        totalBookings=len(rooms),
        roomsDeleted=0,
        roomsAlreadyDeleted=0,
        roomsFailed=0,
        itemsProcessed=0,
    )
    if run.dry_run:
        stats["roomsToDelete"] = []
        for booking_id, name, _, _ in rooms:
            append_capped(stats["roomsToDelete"], name)
            run.detail(f"would delete room {name} (booking {booking_id})")
        stats["itemsProcessed"] = len(rooms)
        return
    daily.require_configured()
    # The client paces the DELETEs; the database work below runs while the next is in flight.
    with closing(daily.delete_rooms([name for _, name, _, _ in rooms])) as deletions:
        for done, (room, deletion) in enumerate(zip(rooms, deletions, strict=True), 1):
            _record(room, deletion, run=run, deleted_by=deleted_by)
            if done < len(rooms):
                run.check_time()


def _record(room, deletion, *, run, deleted_by):
    booking_id, room_name, room_url, booking_status = room
    stats = run.stats
    fields = {
        "booking_id": booking_id,
        "room_name": room_name,
        "room_url": room_url,
        "booking_status": booking_status,
        "deleted_by": deleted_by,
    }
    stats["itemsProcessed"] += 1
    error = deletion.error
    if error:
        log_room_failure(error=error, **fields)
        stats["roomsFailed"] += 1
        if error.is_authentication:
            raise error  # A revoked key fails every room: stop at the first.
        # A room Daily refuses for its own reason (a bad name) is that room's problem.
        outcome = ItemOutcome.FAILED if error.retryable else ItemOutcome.REFUSED
        run.count(outcome, error)
        run.detail(f"failed to delete room {room_name} (booking {booking_id}): {error}")
        return
    forget_deleted_room(outcome=deletion.outcome, **fields)
    if deletion.outcome == daily.DeleteOutcome.DELETED:
        stats["roomsDeleted"] += 1
    else:
        stats["roomsAlreadyDeleted"] += 1
    run.count(ItemOutcome.DONE)
    run.detail(f"deleted room {room_name} (booking {booking_id}): {deletion.outcome}")


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
            "httpStatus": error.http_status,
            "errorKind": str(error.kind),
            "requestedBy": deleted_by,
        },
    )
