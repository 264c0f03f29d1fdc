"""cleanup-daily-rooms: delete the Daily rooms of finished bookings, then forget them."""

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
    for booking_id, room_name, room_url, booking_status in rooms:
        try:
            outcome = delete_and_forget_room(
                client,
                booking_id=booking_id,
                room_name=room_name,
                room_url=room_url,
                booking_status=booking_status,
                deleted_by="cron_job",
            )
        except daily.DailyError:
            stats["roomsFailed"] += 1
        else:
            if outcome == daily.DeleteOutcome.DELETED:
                stats["roomsDeleted"] += 1
            else:
                stats["roomsAlreadyDeleted"] += 1
        stats["itemsProcessed"] += 1


def delete_and_forget_room(client, *, booking_id, room_name, room_url, booking_status, deleted_by):
    """Delete one room on Daily, clear it from its booking and log the outcome.

    Returns the DeleteOutcome; logs DAILY_ROOM_ERROR and re-raises DailyError on failure.
    """
    try:
        outcome = client.delete_room(room_name)
    except daily.DailyError as exc:
        logger.log_daily_room_error(
            room_name,
            booking_id,
            exc,
            {
                "operation": "delete",
                "bookingStatus": booking_status,
                "httpStatus": exc.status,
                "requestedBy": deleted_by,
            },
        )
        raise
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
    return outcome


def delete_booking_room(booking, *, deleted_by="admin"):
    """Delete `booking`'s Daily room now, whatever the booking's status (an admin action).

    Returns "deleted", "already_gone" or "no_room"; raises DailyError when Daily fails
    (after logging DAILY_ROOM_ERROR) and ImproperlyConfigured without DAILY_API_KEY.
    """
    if not booking.daily_room_name:
        return "no_room"
    outcome = delete_and_forget_room(
        daily.get_client(),
        booking_id=booking.pk,
        room_name=booking.daily_room_name,
        room_url=booking.daily_room_url,
        booking_status=booking.status,
        deleted_by=deleted_by,
    )
    booking.refresh_from_db(fields=["daily_room_name", "daily_room_url", "updated_at"])
    return str(outcome)
