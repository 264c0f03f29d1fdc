"""cleanup-daily-rooms: which bookings, what each Daily answer does, logs and stats.

Daily is the fake of tests/daily_fake.py behind `responses` (`daily_fake`): rooms that
exist are deleted, a batch naming a room that does not exist fails as a whole.
"""

import json
from datetime import timedelta
from io import StringIO

import pytest
import requests
from django.core.management import CommandError, call_command

from bookings import room_cleanup
from bookings.daily import DeleteOutcome, RoomDeletion
from bookings.daily_batches import OUTAGE_FAILURES
from bookings.models import Booking
from bookings.room_cleanup import cleanup_daily_rooms, delete_booking_rooms
from cronlogs.models import Log
from cronlogs.runner import run_job
from cronlogs.work import MaxRuntimeExceeded
from tests.conftest import DAILY_TEST_API_KEY, job_run

pytestmark = pytest.mark.django_db

BATCH = "/v1/batch/rooms"


@pytest.fixture
def finished_booking(make_booking, now):
    """A finished booking holding `room`; its call ended two hours before `now`."""

    def make(room, status=Booking.Status.COMPLETED, **fields):
        fields.setdefault("starts_at", now - timedelta(hours=2, minutes=30))
        fields.setdefault("duration_minutes", 30)
        return make_booking(
            status=status,
            daily_room_name=room,
            daily_room_url=f"https://callastar.daily.co/{room}",
            **fields,
        )

    return make


def run_cleanup(now=None, **kwargs):
    run = job_run(now, **kwargs)
    cleanup_daily_rooms(run)
    return run.stats


def rooms_left():
    return sorted(Booking.objects.exclude(daily_room_name=None).values_list("pk", flat=True))


def test_it_deletes_the_rooms_of_finished_bookings_in_one_request_and_clears_them(
    daily_fake, finished_booking
):
    completed = finished_booking("room-completed")
    cancelled = finished_booking("room-cancelled", status=Booking.Status.CANCELLED)
    daily_fake.add_rooms("room-completed", "room-cancelled")

    stats = run_cleanup()

    # It should delete both rooms with one authenticated batch and forget them.
    assert daily_fake.batches() == [["room-completed", "room-cancelled"]]
    assert len(daily_fake.requests) == 1 and daily_fake.rooms == set()
    for booking in (completed, cancelled):
        booking.refresh_from_db()
        assert booking.daily_room_name is None and booking.daily_room_url is None
    assert stats == {
        "totalBookings": 2,
        "roomsDeleted": 2,
        "roomsAlreadyDeleted": 0,
        "roomsFailed": 0,
        "roomsKept": 0,
        "itemsProcessed": 2,
    }
    # It should log each deletion with the seed's context fields.
    row = Log.objects.get(type="DAILY_ROOM_DELETED", context__roomId="room-cancelled")
    assert (row.status, row.level) == ("SUCCESS", "INFO")
    assert row.context["bookingId"] == cancelled.pk
    assert row.context["roomUrl"] == "https://callastar.daily.co/room-cancelled"
    assert row.context["bookingStatus"] == "CANCELLED"
    assert row.context["deletedBy"] == "cron_job"
    assert row.context["alreadyDeleted"] is False and row.context["bookingCleared"] is True


def test_it_sends_batches_of_daily_batch_size(daily_fake, finished_booking, settings):
    settings.DAILY_BATCH_SIZE = 2
    for n in range(5):
        finished_booking(f"room-{n}")
        daily_fake.add_rooms(f"room-{n}")

    stats = run_cleanup()

    # It should name each room in exactly one request, two at a time, oldest first.
    assert daily_fake.batches() == [["room-0", "room-1"], ["room-2", "room-3"], ["room-4"]]
    assert stats["roomsDeleted"] == 5 and rooms_left() == []


def test_it_finds_a_room_already_gone_and_deletes_the_others(daily_fake, finished_booking):
    for n in range(8):
        finished_booking(f"room-{n}")
    daily_fake.add_rooms(*(f"room-{n}" for n in range(8) if n != 5))

    stats = run_cleanup()

    # It should not fail: the room Daily no longer has counts as deleted, and every
    # booking is cleared.
    assert (stats["roomsDeleted"], stats["roomsAlreadyDeleted"], stats["roomsFailed"]) == (7, 1, 0)
    assert rooms_left() == [] and daily_fake.rooms == set()
    row = Log.objects.get(type="DAILY_ROOM_DELETED", context__roomId="room-5")
    assert row.context["alreadyDeleted"] is True and row.context["bookingCleared"] is True
    # It should find it by halving the refused batch and with one GET of it, deleting
    # the others on the way: [0-7] refused, [0-3] deleted, [4-5] refused, [4] deleted,
    # room-5 checked and found gone, [6-7] deleted.
    assert daily_fake.batches()[1:] == [
        ["room-0", "room-1", "room-2", "room-3"],
        ["room-4", "room-5"],
        ["room-4"],
        ["room-6", "room-7"],
    ]
    assert daily_fake.calls("GET") == [("GET", "/v1/rooms/room-5", ["room-5"])]
    assert not daily_fake.calls("DELETE", "/v1/rooms/room-5")


def test_it_finds_a_room_already_gone_while_daily_chokes_on_another(daily_fake, finished_booking):
    for n in range(8):
        finished_booking(f"room-{n}")
    daily_fake.add_rooms(*(f"room-{n}" for n in range(8) if n != 5))

    def choke_after_the_first_batch(method, path, names):
        # The first batch is refused for room-5; Daily chokes on room-2 while it narrows.
        if len(daily_fake.requests) == 2:
            daily_fake.fail_room("room-2", status=500)

    daily_fake.on_request = choke_after_the_first_batch
    stats = run_cleanup()

    # It should settle the gone room, keep the one Daily fails on, and delete the rest.
    assert (stats["roomsDeleted"], stats["roomsAlreadyDeleted"], stats["roomsFailed"]) == (6, 1, 1)
    assert daily_fake.rooms == {"room-2"}
    assert [Booking.objects.get(pk=pk).daily_room_name for pk in rooms_left()] == ["room-2"]
    assert Log.objects.get(type="DAILY_ROOM_ERROR").context["roomId"] == "room-2"


def test_it_retries_a_500_and_deletes(daily_fake, finished_booking):
    booking = finished_booking("room-flaky")
    daily_fake.add_rooms("room-flaky")
    daily_fake.fail_room("room-flaky", status=500, times=1)

    stats = run_cleanup()

    # It should retry within the same run and count one deletion, no failure.
    assert len(daily_fake.requests) == 2
    assert (stats["roomsDeleted"], stats["roomsFailed"]) == (1, 0)
    booking.refresh_from_db()
    assert booking.daily_room_name is None
    assert not Log.objects.filter(type="DAILY_ROOM_ERROR").exists()


def test_it_retries_a_429_and_deletes(daily_fake, finished_booking):
    finished_booking("room-throttled")
    daily_fake.add_rooms("room-throttled")
    daily_fake.fail_room("room-throttled", status=429, error="rate-limit-error", times=1)

    stats = run_cleanup()

    # (The wait itself is tested against a real server in test_daily_client.)
    assert len(daily_fake.requests) == 2
    assert stats["roomsDeleted"] == 1


def test_it_keeps_the_room_and_logs_an_error_when_daily_keeps_failing(daily_fake, finished_booking):
    booking = finished_booking("room-broken")
    daily_fake.add_rooms("room-broken")
    daily_fake.fail_room("room-broken", status=500)

    stats = run_cleanup()

    # It should give up after the bounded retries of the batch and of the room alone,
    # log DAILY_ROOM_ERROR and keep the room.
    assert [call[1] for call in daily_fake.requests] == [BATCH] * 4 + ["/v1/rooms/room-broken"] * 4
    assert (stats["roomsFailed"], stats["itemsProcessed"]) == (1, 1)
    booking.refresh_from_db()
    assert booking.daily_room_name == "room-broken"
    row = Log.objects.get(type="DAILY_ROOM_ERROR")
    assert (row.status, row.level) == ("ERROR", "ERROR")
    assert row.context["roomId"] == "room-broken"
    assert row.context["bookingId"] == booking.pk
    assert row.context["operation"] == "delete"
    assert row.context["error"] == "DailyError: Daily unavailable 500: server-error"
    assert row.context["errorKind"] == "unavailable" and row.context["httpStatus"] == 500

    # It should try that room again on the next run.
    daily_fake.fail_room("room-broken", times=0)
    stats = run_cleanup()
    assert stats["roomsDeleted"] == 1
    booking.refresh_from_db()
    assert booking.daily_room_name is None


def test_it_does_not_let_a_room_daily_chokes_on_hold_back_the_others(daily_fake, finished_booking):
    for n in range(8):
        finished_booking(f"room-{n}")
        daily_fake.add_rooms(f"room-{n}")
    daily_fake.fail_room("room-6", status=500)

    stats = run_cleanup()

    # It should delete the seven others and leave only room-6 for the next run.
    assert (stats["roomsDeleted"], stats["roomsFailed"]) == (7, 1)
    assert daily_fake.rooms == {"room-6"}
    assert [Booking.objects.get(pk=pk).daily_room_name for pk in rooms_left()] == ["room-6"]


def test_it_leaves_every_room_for_the_next_run_when_daily_is_down(daily_fake, finished_booking):
    for n in range(8):
        finished_booking(f"room-{n}")
        daily_fake.add_rooms(f"room-{n}")
        daily_fake.fail_room(f"room-{n}", status=503, error="service-unavailable")

    stats = run_cleanup()

    # It should split the refused batch a few times, then take Daily for down and send
    # nothing more: six deletions failed in a row (with their retries), every room kept.
    assert len(daily_fake.requests) == OUTAGE_FAILURES * 4
    assert (stats["roomsFailed"], stats["itemsProcessed"]) == (8, 8)
    assert len(rooms_left()) == 8


def test_it_splits_past_two_rooms_daily_chokes_on(daily_fake, finished_booking):
    for n in range(8):
        finished_booking(f"room-{n}")
        daily_fake.add_rooms(f"room-{n}")
    daily_fake.fail_room("room-1", status=500)
    daily_fake.fail_room("room-6", status=500)

    stats = run_cleanup()

    # Both halves of the batch fail, yet the six other rooms are deleted.
    assert (stats["roomsDeleted"], stats["roomsFailed"]) == (6, 2)
    assert daily_fake.rooms == {"room-1", "room-6"}


def test_it_keeps_the_room_when_daily_times_out(daily_fake, finished_booking, monkeypatch):
    booking = finished_booking("room-slow")

    def time_out(*args, **kwargs):
        raise requests.exceptions.ReadTimeout("timed out")

    monkeypatch.setattr(daily_fake, "handle", time_out)
    stats = run_cleanup()

    assert stats["roomsFailed"] == 1
    booking.refresh_from_db()
    assert booking.daily_room_name == "room-slow"
    row = Log.objects.get(type="DAILY_ROOM_ERROR")
    assert "timed out" in row.context["error"]


@pytest.mark.parametrize("status", [Booking.Status.PENDING, Booking.Status.CONFIRMED])
def test_it_never_touches_upcoming_bookings(daily_fake, finished_booking, status):
    booking = finished_booking("room-upcoming", status=status)
    daily_fake.add_rooms("room-upcoming")

    stats = run_cleanup()

    # It should neither call Daily nor change the booking.
    assert daily_fake.requests == []
    assert stats["totalBookings"] == 0
    booking.refresh_from_db()
    assert booking.daily_room_name == "room-upcoming"
    assert booking.daily_room_url == "https://callastar.daily.co/room-upcoming"


def test_it_ignores_finished_bookings_without_a_room(daily_fake, finished_booking):
    finished_booking(None)
    finished_booking("", status=Booking.Status.CANCELLED)

    stats = run_cleanup()

    assert stats["totalBookings"] == 0
    assert daily_fake.requests == []


def test_it_goes_on_after_a_failure_and_its_stats_add_up(daily_fake, finished_booking):
    finished_booking("room-1")
    failing = finished_booking("room-2")
    finished_booking("room-3")
    finished_booking("room-4", status=Booking.Status.CANCELLED)
    daily_fake.add_rooms("room-1", "room-2", "room-4")
    daily_fake.fail_room("room-2", status=502, error="Bad Gateway")

    stats = run_cleanup()

    # It should process every room, whatever happened to the one beside it.
    assert (stats["roomsDeleted"], stats["roomsAlreadyDeleted"], stats["roomsFailed"]) == (2, 1, 1)
    assert stats["itemsProcessed"] == stats["totalBookings"] == 4
    assert rooms_left() == [failing.pk]
    assert Log.objects.filter(type="DAILY_ROOM_DELETED").count() == 3
    assert (
        Log.objects.get(type="DAILY_ROOM_ERROR")
        .context["error"]
        .endswith("Daily unavailable 502: Bad Gateway")
    )


def test_it_does_not_clear_a_booking_whose_room_changed_meanwhile(
    finished_booking, daily_settings, monkeypatch
):
    booking = finished_booking("room-old")

    def delete_rooms_while_reassigned(names, *, before_delete):
        """Daily deletes the room while another process gives the booking a new one."""
        for name in before_delete(names):
            Booking.objects.filter(pk=booking.pk).update(
                daily_room_name="room-new", daily_room_url="https://callastar.daily.co/new"
            )
            yield RoomDeletion(name, DeleteOutcome.DELETED, None)

    monkeypatch.setattr(room_cleanup.daily, "delete_rooms", delete_rooms_while_reassigned)
    stats = run_cleanup()

    # It should count the deletion but leave the new room on the booking.
    assert stats["roomsDeleted"] == 1
    booking.refresh_from_db()
    assert booking.daily_room_name == "room-new"
    assert Log.objects.get(type="DAILY_ROOM_DELETED").context["bookingCleared"] is False


def test_it_fails_the_run_naming_daily_api_key_when_it_is_missing(
    daily_fake, daily_settings, finished_booking
):
    daily_settings.DAILY_API_KEY = ""
    booking = finished_booking("room-waiting")

    result = run_job("cleanup-daily-rooms")

    # It should fail loudly (CRON_ERROR) with the variable's name, calling nothing.
    assert result.failed
    assert "DAILY_API_KEY" in result.error
    row = Log.objects.get(type="CRON_ERROR")
    assert "DAILY_API_KEY" in row.context["error"]
    assert daily_fake.requests == []
    booking.refresh_from_db()
    assert booking.daily_room_name == "room-waiting"


def test_it_lists_the_rooms_in_a_dry_run_even_without_a_key(
    daily_fake, daily_settings, finished_booking
):
    daily_settings.DAILY_API_KEY = ""
    first = finished_booking("room-a")
    finished_booking("room-b", status=Booking.Status.CANCELLED)

    result = run_job("cleanup-daily-rooms", dry_run=True)

    # It should list what it would delete, with no HTTP, no write and no log row.
    assert not result.failed
    assert result.stats["roomsToDelete"] == ["room-a", "room-b"]
    assert result.stats["totalBookings"] == 2
    assert daily_fake.requests == []
    assert not Log.objects.exists()
    first.refresh_from_db()
    assert first.daily_room_name == "room-a"


def test_it_never_writes_the_api_key_into_a_log_row(daily_fake, finished_booking):
    finished_booking("room-echo")
    daily_fake.add_rooms("room-echo")
    daily_fake.fail_room(
        "room-echo", status=400, error="invalid-request-error", info=f"Bearer {DAILY_TEST_API_KEY}"
    )

    run_job("cleanup-daily-rooms")

    assert Log.objects.filter(type="DAILY_ROOM_ERROR").exists()
    for row in Log.objects.all():
        dumped = json.dumps([row.message, row.context, row.error])
        assert DAILY_TEST_API_KEY not in dumped


def test_it_stops_before_the_next_request_when_its_time_is_up(
    daily_fake, finished_booking, settings, now
):
    settings.DAILY_BATCH_SIZE = 2
    for n in range(4):
        finished_booking(f"room-{n}")
        daily_fake.add_rooms(f"room-{n}")
    clock = [0.0]
    daily_fake.on_request = lambda *request: clock.__setitem__(0, 100.0)
    run = job_run(now, max_runtime=timedelta(seconds=10), clock=lambda: clock[0])

    with pytest.raises(MaxRuntimeExceeded):
        cleanup_daily_rooms(run)

    # It should record the whole first batch, then send nothing more.
    assert daily_fake.batches() == [["room-0", "room-1"]]
    assert run.stats["roomsDeleted"] == 2
    assert Log.objects.filter(type="DAILY_ROOM_DELETED").count() == 2
    assert len(rooms_left()) == 2


# --- Rooms outlive their calls: the grace period and the check right before deleting ----


@pytest.mark.parametrize(
    ("ended_ago", "deleted"),
    [
        (timedelta(minutes=1), False),
        (timedelta(minutes=29, seconds=59), False),
        (timedelta(minutes=30), False),
        (timedelta(minutes=30, seconds=1), True),
        (timedelta(minutes=31), True),
    ],
)
def test_it_keeps_a_completed_calls_room_for_the_grace_period(
    daily_fake, finished_booking, now, ended_ago, deleted
):
    # A 45-minute call whose scheduled end is `ended_ago` behind `now`.
    booking = finished_booking(
        "room-call", starts_at=now - timedelta(minutes=45) - ended_ago, duration_minutes=45
    )
    daily_fake.add_rooms("room-call")

    stats = run_cleanup(now)

    # It should delete the room only once its scheduled end is DAILY_ROOM_GRACE_MINUTES past.
    booking.refresh_from_db()
    assert (booking.daily_room_name is None) == deleted
    assert stats["totalBookings"] == int(deleted)
    assert ("room-call" not in daily_fake.rooms) == deleted


def test_it_keeps_the_room_of_a_call_completed_before_its_scheduled_end(
    daily_fake, finished_booking, now
):
    # Marked COMPLETED with 10 minutes still scheduled: participants may be reconnecting.
    booking = finished_booking("room-early", starts_at=now - timedelta(minutes=20))

    stats = run_cleanup(now)

    assert stats["totalBookings"] == 0 and daily_fake.requests == []
    booking.refresh_from_db()
    assert booking.daily_room_name == "room-early"


def test_it_follows_daily_room_grace_minutes(daily_fake, finished_booking, now, settings):
    settings.DAILY_ROOM_GRACE_MINUTES = 5
    finished_booking("room-a", starts_at=now - timedelta(minutes=36))  # ended 6 min ago
    finished_booking("room-b", starts_at=now - timedelta(minutes=34))  # ended 4 min ago
    daily_fake.add_rooms("room-a", "room-b")

    run_cleanup(now)

    assert daily_fake.batches() == [["room-a"]]


def test_it_deletes_a_cancelled_future_calls_room_at_once(daily_fake, finished_booking, now):
    booking = finished_booking(
        "room-cancelled", status=Booking.Status.CANCELLED, starts_at=now + timedelta(days=3)
    )
    daily_fake.add_rooms("room-cancelled")

    stats = run_cleanup(now)

    assert stats["roomsDeleted"] == 1
    booking.refresh_from_db()
    assert booking.daily_room_name is None
    assert Log.objects.get(type="DAILY_ROOM_DELETED").context["bookingStatus"] == "CANCELLED"


@pytest.mark.parametrize(
    "started_ago",
    [timedelta(0), timedelta(minutes=10), timedelta(minutes=30), timedelta(minutes=55)],
)
def test_it_keeps_a_cancelled_calls_room_while_the_call_is_under_way(
    daily_fake, finished_booking, now, started_ago
):
    # A 30-minute call that started `started_ago`: under way until 30 + 30 minutes after.
    booking = finished_booking(
        "room-live", status=Booking.Status.CANCELLED, starts_at=now - started_ago
    )
    daily_fake.add_rooms("room-live")

    stats = run_cleanup(now)

    assert stats["totalBookings"] == 0 and daily_fake.requests == []
    booking.refresh_from_db()
    assert booking.daily_room_name == "room-live"


def test_it_keeps_the_room_of_a_booking_reconfirmed_during_the_run(
    daily_fake, finished_booking, settings, now
):
    settings.DAILY_BATCH_SIZE = 1
    first = finished_booking("room-first")
    second = finished_booking("room-second", status=Booking.Status.CANCELLED)
    daily_fake.add_rooms("room-first", "room-second")

    def reconfirm_second(method, path, names):
        # While Daily deletes the first room, the platform re-confirms the second booking.
        Booking.objects.filter(pk=second.pk).update(status=Booking.Status.CONFIRMED)

    daily_fake.on_request = reconfirm_second
    stats = run_cleanup(now)

    # It should read the second booking again before its request, and leave it alone.
    assert daily_fake.batches() == [["room-first"]]
    assert "room-second" in daily_fake.rooms
    second.refresh_from_db()
    assert second.status == "CONFIRMED"
    assert second.daily_room_name == "room-second"
    assert second.daily_room_url == "https://callastar.daily.co/room-second"
    first.refresh_from_db()
    assert first.daily_room_name is None
    # It should say so in the run's stats, and log no deletion for it.
    assert (stats["roomsDeleted"], stats["roomsKept"], stats["itemsProcessed"]) == (1, 1, 1)
    assert stats["keptRooms"] == [
        {"bookingId": second.pk, "roomId": "room-second", "bookingStatus": "CONFIRMED"}
    ]
    assert not Log.objects.filter(type="DAILY_ROOM_DELETED", context__roomId="room-second")


def test_it_keeps_the_fields_of_a_booking_reconfirmed_while_its_room_is_deleted(
    daily_fake, finished_booking, now
):
    booking = finished_booking("room-race")
    daily_fake.add_rooms("room-race")

    def reconfirm(method, path, names):
        Booking.objects.filter(pk=booking.pk).update(status=Booking.Status.CONFIRMED)

    daily_fake.on_request = reconfirm
    stats = run_cleanup(now)

    # The room went with its request; the booking, CONFIRMED again, keeps its fields.
    assert stats["roomsDeleted"] == 1
    booking.refresh_from_db()
    assert (booking.status, booking.daily_room_name) == ("CONFIRMED", "room-race")
    row = Log.objects.get(type="DAILY_ROOM_DELETED")
    assert row.context["bookingStatus"] == "COMPLETED"
    assert row.context["bookingCleared"] is False


def test_it_logs_the_bookings_status_at_deletion_time(daily_fake, finished_booking, settings, now):
    settings.DAILY_BATCH_SIZE = 1
    finished_booking("room-first")
    second = finished_booking("room-second", status=Booking.Status.CANCELLED)
    daily_fake.add_rooms("room-first", "room-second")

    def complete_second(method, path, names):
        Booking.objects.filter(pk=second.pk).update(status=Booking.Status.COMPLETED)

    daily_fake.on_request = complete_second
    run_cleanup(now)

    # Selected as CANCELLED, it was COMPLETED (and still due) when its room went.
    row = Log.objects.get(type="DAILY_ROOM_DELETED", context__roomId="room-second")
    assert row.context["bookingStatus"] == "COMPLETED"
    second.refresh_from_db()
    assert second.daily_room_name is None


# --- The command and the admin's action ---------------------------------------------------


def test_the_command_runs_the_job_and_records_the_run(daily_fake, finished_booking):
    finished_booking("room-cmd")
    daily_fake.add_rooms("room-cmd")
    out = StringIO()

    call_command("cleanup_daily_rooms", stdout=out)

    # It should go through the shared runner: one CRON_RUN row carrying the stats.
    assert "cleanup-daily-rooms: done; processed 1 items" in out.getvalue()
    row = Log.objects.get(type="CRON_RUN")
    assert row.context["cronType"] == "cleanup-daily-rooms"
    assert row.context["itemsProcessed"] == 1
    assert row.context["roomsDeleted"] == 1
    assert row.context["roomsAlreadyDeleted"] == 0
    assert row.context["roomsFailed"] == 0
    assert row.context["roomsKept"] == 0
    assert row.context["totalBookings"] == 1


def test_the_command_exits_non_zero_without_a_key(daily_fake, daily_settings):
    daily_settings.DAILY_API_KEY = ""

    with pytest.raises(CommandError, match="DAILY_API_KEY"):
        call_command("cleanup_daily_rooms", stdout=StringIO())


def test_the_command_prints_the_rooms_of_a_dry_run(daily_fake, finished_booking):
    booking = finished_booking("room-listed")
    out = StringIO()

    call_command("cleanup_daily_rooms", "--dry-run", stdout=out)

    assert f"would delete room room-listed (booking {booking.pk})" in out.getvalue()
    assert daily_fake.requests == []


def test_delete_booking_rooms_deletes_and_clears_for_the_admin(daily_fake, make_booking):
    booking = make_booking(daily_room_name="room-admin", daily_room_url="https://x.daily.co/r")
    daily_fake.add_rooms("room-admin")
    run = job_run()

    delete_booking_rooms(run, booking_ids=[booking.pk], deleted_by="admin")

    # It should delete even a confirmed, upcoming booking's room when staff ask, and say so.
    booking.refresh_from_db()
    assert booking.daily_room_name is None
    assert run.stats["roomsDeleted"] == 1 and run.stats["withoutRoom"] == 0
    row = Log.objects.get(type="DAILY_ROOM_DELETED")
    assert (row.context["deletedBy"], row.context["bookingStatus"]) == ("admin", "CONFIRMED")
    assert daily_fake.batches() == [["room-admin"]]

    # It should find nothing left to delete the second time.
    again = job_run()
    delete_booking_rooms(again, booking_ids=[booking.pk])
    assert again.stats["withoutRoom"] == 1 and again.stats["totalBookings"] == 0
    assert len(daily_fake.requests) == 1


def test_delete_booking_rooms_keeps_the_room_and_logs_when_daily_fails(
    daily_fake, finished_booking
):
    booking = finished_booking("room-admin-fail")
    daily_fake.add_rooms("room-admin-fail")
    daily_fake.fail_room("room-admin-fail", status=500)
    run = job_run()

    delete_booking_rooms(run, booking_ids=[booking.pk], deleted_by="admin")

    # It should count a provider failure against the run and keep the room.
    assert run.stats["roomsFailed"] == 1 and run.every_attempt_failed
    booking.refresh_from_db()
    assert booking.daily_room_name == "room-admin-fail"
    assert Log.objects.get(type="DAILY_ROOM_ERROR").context["requestedBy"] == "admin"


def test_the_dry_run_and_the_run_select_with_the_same_rule(daily_fake, finished_booking, now):
    finished_booking("room-due")
    finished_booking("room-grace", starts_at=now - timedelta(minutes=40))
    daily_fake.add_rooms("room-due", "room-grace")

    listed = run_cleanup(now, dry_run=True)["roomsToDelete"]
    run_cleanup(now)

    assert listed == ["room-due"] and daily_fake.rooms == {"room-grace"}
