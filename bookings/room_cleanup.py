"""cleanup-daily-rooms: delete the Daily rooms of calls that are over, then forget them."""

import time
from contextlib import closing
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import (
    BooleanField,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    Func,
    Q,
)
from django.utils import timezone

from bookings import daily
from bookings.models import Booking
from cronlogs import logger
from cronlogs.models import Log
from cronlogs.work import ItemOutcome, append_capped

FINISHED_STATUSES = (Booking.Status.COMPLETED, Booking.Status.CANCELLED)


class Room(NamedTuple):
    booking_id: int
    name: str
    url: str | None
    booking_status: str


ROOM_FIELDS = ("pk", "daily_room_name", "daily_room_url", "status")


class Held(NamedTuple):
    """A booking read again right before its room's deletion request."""

    room_name: str | None
    status: str
    due: bool  # still due for cleanup (always, when staff asked)


# The fields a Held is read from.
HELD = ("daily_room_name", "status", "due")


class Minutes(Func):
    """A whole number of minutes as a duration, on PostgreSQL and SQLite alike."""

    arity = 1
    output_field = DurationField()
    template = "make_interval(mins => %(expressions)s)"

    def as_sqlite(self, compiler, connection, **extra_context):
        # SQLite keeps a duration as a number of microseconds.
        template = "(%(expressions)s * 60000000)"
        return self.as_sql(compiler, connection, template=template, **extra_context)


def with_scheduled_end(bookings):
    """`bookings` annotated with `scheduled_end`: starts_at + duration_minutes."""
    end = F("starts_at") + Minutes("duration_minutes")
    return bookings.annotate(scheduled_end=ExpressionWrapper(end, output_field=DateTimeField()))


def due_for_cleanup(now):
    """The condition (on bookings annotated by `with_scheduled_end`) under which a booking's
    room may go at `now`: COMPLETED once its scheduled end is DAILY_ROOM_GRACE_MINUTES past,
    CANCELLED unless its call is under way (started, and not that far past its end)."""
    cutoff = now - timedelta(minutes=settings.DAILY_ROOM_GRACE_MINUTES)
    # starts_at < cutoff follows from the end being past it; said outright, the
    # (status, starts_at) index can narrow the scan down before the end is computed.
    over = Q(starts_at__lt=cutoff, scheduled_end__lt=cutoff)
    completed = Q(status=Booking.Status.COMPLETED) & over
    cancelled = Q(status=Booking.Status.CANCELLED) & (Q(starts_at__gt=now) | over)
    return completed | cancelled


def bookings_due_for_cleanup(now):
    """Bookings that still name a Daily room and whose room may go at `now`, oldest first."""
    return (
        with_scheduled_end(Booking.objects.filter(daily_room_name__isnull=False))
        .exclude(daily_room_name="")
        .filter(due_for_cleanup(now))
        .order_by("pk")
    )


def cleanup_daily_rooms(run):
    """Delete on Daily the room of every COMPLETED booking whose scheduled end (starts_at +
    duration_minutes) is more than DAILY_ROOM_GRACE_MINUTES past, and of every CANCELLED
    one whose call is not under way, then clear the booking's room fields. Rooms go in
    batches; right before each deletion request their bookings are read again, and a
    booking no longer due (re-confirmed, moved) keeps its room.

    A room that fails keeps its booking untouched, so the next run tries it again.
    """
    rooms = [Room(*row) for row in bookings_due_for_cleanup(run.now).values_list(*ROOM_FIELDS)]
    RoomDeleter(rooms, run=run, deleted_by="cron_job", only_due=True).delete()


def delete_booking_rooms(run, *, booking_ids, deleted_by="admin"):
    """Delete the rooms of the given bookings whatever their status (the admin's "delete
    Daily room"), with the same requests, log rows and outcomes as the job."""
    rooms = [
        Room(*row)
        for row in Booking.objects.filter(pk__in=list(booking_ids), daily_room_name__isnull=False)
        .exclude(daily_room_name="")
        .order_by("pk")
        .values_list(*ROOM_FIELDS)
    ]
    run.stats["withoutRoom"] = len(set(booking_ids)) - len(rooms)
    RoomDeleter(rooms, run=run, deleted_by=deleted_by, only_due=False).delete()


class RoomDeleter:
    """Deletes `rooms` on Daily for one run and records what became of each.

    With `only_due`, a room goes only while its booking is still due for cleanup when its
    deletion request leaves, and the booking is cleared only while still finished; without
    (staff asked), whatever the booking's status.
    """

    def __init__(self, rooms, *, run, deleted_by, only_due):
        self.run = run
        self.deleted_by = deleted_by
        self.only_due = only_due
        self.by_name = {}
        for room in rooms:
            self.by_name.setdefault(room.name, []).append(room)
        self.started = time.monotonic()
        self.settled = []  # what Daily answered since the last request, to record
        run.stats.update(
            totalBookings=len(rooms),
            roomsDeleted=0,
            roomsAlreadyDeleted=0,
            roomsFailed=0,
            itemsProcessed=0,
        )
        if only_due:
            run.stats["roomsKept"] = 0

    def delete(self):
        """Delete the rooms or, in a dry run, list what would be deleted."""
        run = self.run
        if run.dry_run:
            run.stats["roomsToDelete"] = []
            for room in self._rooms():
                append_capped(run.stats["roomsToDelete"], room.name)
                run.detail(f"would delete room {room.name} (booking {room.booking_id})")
            run.stats["itemsProcessed"] = run.stats["totalBookings"]
            return
        daily.require_configured()
        deletions = daily.delete_rooms(list(self.by_name), before_delete=self.still_to_delete)
        try:
            with closing(deletions):
                for deletion in deletions:
                    self.settled.append(deletion)
                    if deletion.error and deletion.error.is_authentication:
                        break  # A revoked key fails every room: stop at the first.
        finally:
            self._record_settled()

    def _record_settled(self):
        """Record the rooms Daily settled since the last request, in one transaction."""
        settled, self.settled = self.settled, []
        gone, failed = [], []
        for deletion in settled:
            for room in self.by_name[deletion.name]:
                if deletion.error:
                    failed.append((room, deletion.error))
                else:
                    gone.append((room, deletion.outcome))
        if not settled:
            return
        with transaction.atomic():
            statuses = FINISHED_STATUSES if self.only_due else None
            rows = forget_deleted_rooms(gone, deleted_by=self.deleted_by, statuses=statuses)
            rows += [room_failure_row(room, e, deleted_by=self.deleted_by) for room, e in failed]
            Log.objects.bulk_create(rows)
        for room, outcome in gone:
            self._count_gone(room, outcome)
        for room, error in failed:
            self._count_failed(room, error)
        refusal = next((e for _, e in failed if e.is_authentication), None)
        if refusal:
            raise refusal

    def still_to_delete(self, names):
        """Right before a deletion request: those of `names` whose bookings may still lose
        them, read again in one query; the others are recorded as kept."""
        self._record_settled()
        self.run.check_time()
        ids = [room.booking_id for name in names for room in self.by_name[name]]
        bookings = Booking.objects.filter(pk__in=ids)
        if self.only_due:
            now = self.run.now + timedelta(seconds=time.monotonic() - self.started)
            due = ExpressionWrapper(due_for_cleanup(now), output_field=BooleanField())
            rows = with_scheduled_end(bookings).annotate(due=due).values_list("pk", *HELD)
        else:
            rows = ((pk, *row, True) for pk, *row in bookings.values_list("pk", *HELD[:2]))
        held = {pk: Held(*row) for pk, *row in rows}
        wanted = []
        for name in names:
            rooms = self.by_name[name]
            now_held = [held.get(room.booking_id) for room in rooms]
            if all(it and it.room_name == name and it.due for it in now_held):
                wanted.append(name)
                # What the log row says: the booking's status as its room goes.
                self.by_name[name] = [
                    room._replace(booking_status=it.status)
                    for room, it in zip(rooms, now_held, strict=True)
                ]
            else:
                for room, it in zip(rooms, now_held, strict=True):
                    self._keep(room, it)
        return wanted

    def _rooms(self):
        return [room for rooms in self.by_name.values() for room in rooms]

    def _keep(self, room, held):
        """A room left alone: its booking is no longer due (or no longer names it)."""
        if held is None:
            why = "the booking is gone"
        elif held.room_name != room.name:
            why = "the booking names another room now"
        elif held.due:
            why = "another booking with the same room is not due"
        else:
            why = f"the booking is {held.status} and not due for cleanup"
        stats = self.run.stats
        stats["roomsKept"] = stats.get("roomsKept", 0) + 1
        append_capped(
            stats.setdefault("keptRooms", []),
            {
                "bookingId": room.booking_id,
                "roomId": room.name,
                "bookingStatus": held.status if held else None,
            },
        )
        self.run.count(ItemOutcome.UNCHANGED)
        self.run.detail(f"kept room {room.name} (booking {room.booking_id}): {why}")

    def _count_gone(self, room, outcome):
        stats = self.run.stats
        stats["itemsProcessed"] += 1
        if outcome == daily.DeleteOutcome.DELETED:
            stats["roomsDeleted"] += 1
        else:
            stats["roomsAlreadyDeleted"] += 1
        self.run.count(ItemOutcome.DONE)
        self.run.detail(f"deleted room {room.name} (booking {room.booking_id}): {outcome}")

    def _count_failed(self, room, error):
        stats = self.run.stats
        stats["itemsProcessed"] += 1
        stats["roomsFailed"] += 1
        if error.is_authentication:
            return  # The run stops here, failed: not an item's outcome.
        # A room Daily refuses for its own reason (a bad name) is that room's problem.
        self.run.count(ItemOutcome.FAILED if error.retryable else ItemOutcome.REFUSED, error)
        self.run.detail(f"failed to delete room {room.name} (booking {room.booking_id}): {error}")


def forget_deleted_rooms(gone, *, deleted_by, statuses=None):
    """Clear rooms Daily no longer has from their bookings, in a transaction; return the
    DAILY_ROOM_DELETED rows to save. `gone` holds (Room, DeleteOutcome) pairs.

    A booking is cleared only if it still names its room (it may have been given a new one
    meanwhile) and, with `statuses`, only if its status is still one of them.
    """
    bookings = Booking.objects.select_for_update().filter(pk__in=[r.booking_id for r, _ in gone])
    if statuses:
        bookings = bookings.filter(status__in=statuses)
    holding = set(bookings.values_list("pk", "daily_room_name"))
    cleared = {(room.booking_id, room.name) for room, _ in gone} & holding
    Booking.objects.filter(pk__in=[pk for pk, _ in cleared]).update(
        daily_room_name=None, daily_room_url=None, updated_at=timezone.now()
    )
    return [
        logger.log_daily_room_deleted(
            room.name,
            room.booking_id,
            {
                "roomUrl": room.url,
                "bookingStatus": room.booking_status,
                "deletedBy": deleted_by,
                "alreadyDeleted": outcome == daily.DeleteOutcome.ALREADY_GONE,
                "bookingCleared": (room.booking_id, room.name) in cleared,
            },
            save=False,
        )
        for room, outcome in gone
    ]


def room_failure_row(room, error, *, deleted_by):
    """The DAILY_ROOM_ERROR row (unsaved) of a room Daily did not delete."""
    return logger.log_daily_room_error(
        room.name,
        room.booking_id,
        error,
        {
            "operation": "delete",
            "roomUrl": room.url,
            "bookingStatus": room.booking_status,
            "httpStatus": error.http_status,
            "errorKind": str(error.kind),
            "requestedBy": deleted_by,
        },
        save=False,
    )
