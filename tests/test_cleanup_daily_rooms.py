"""cleanup-daily-rooms: which bookings, what each Daily answer does, logs and stats."""

import json
import re
from io import StringIO

import pytest
import requests
import responses
from django.core.management import CommandError, call_command

from bookings import room_cleanup
from bookings.daily import DeleteOutcome, RoomDeletion
from bookings.models import Booking
from bookings.room_cleanup import cleanup_daily_rooms, delete_booking_rooms
from cronlogs.models import Log
from cronlogs.runner import run_job
from tests.conftest import DAILY_TEST_API_KEY, DAILY_TEST_API_URL, job_run

pytestmark = pytest.mark.django_db

ANY_ROOM = re.compile(re.escape(f"{DAILY_TEST_API_URL}/rooms/") + ".*")


def room_url(name):
    return f"{DAILY_TEST_API_URL}/rooms/{name}"


@pytest.fixture
def finished_booking(make_booking):
    def make(room, status=Booking.Status.COMPLETED):
        return make_booking(
            status=status,
            daily_room_name=room,
            daily_room_url=f"https://callastar.daily.co/{room}",
        )

    return make


def run_cleanup():
    run = job_run()
    cleanup_daily_rooms(run)
    return run.stats


def test_it_deletes_the_rooms_of_finished_bookings_and_clears_them(mocked_daily, finished_booking):
    completed = finished_booking("room-completed")
    cancelled = finished_booking("room-cancelled", status=Booking.Status.CANCELLED)
    for room in ("room-completed", "room-cancelled"):
        mocked_daily.delete(room_url(room), json={"deleted": True, "name": room})

    stats = run_cleanup()

    # It should delete both rooms with one request each and forget them on the bookings.
    assert [call.request.method for call in mocked_daily.calls] == ["DELETE", "DELETE"]
    for booking in (completed, cancelled):
        booking.refresh_from_db()
        assert booking.daily_room_name is None and booking.daily_room_url is None
    assert stats == {
        "totalBookings": 2,
        "roomsDeleted": 2,
        "roomsAlreadyDeleted": 0,
        "roomsFailed": 0,
        "itemsProcessed": 2,
    }
    # It should log each deletion with the seed's context fields.
    row = Log.objects.get(type="DAILY_ROOM_DELETED", context__roomId="room-cancelled")
    assert (row.status, row.level) == ("SUCCESS", "INFO")
    assert row.context["bookingId"] == cancelled.pk
    assert row.context["roomUrl"] == "https://callastar.daily.co/room-cancelled"
    assert row.context["bookingStatus"] == "CANCELLED"
    assert row.context["deletedBy"] == "cron_job"


def test_it_counts_a_404_as_already_deleted_and_clears_the_booking(mocked_daily, finished_booking):
    booking = finished_booking("room-gone")
    mocked_daily.delete(room_url("room-gone"), status=404, json={"error": "not-found"})

    stats = run_cleanup()

    # It should not check first, not fail, and still clear the booking.
    assert len(mocked_daily.calls) == 1
    assert (stats["roomsDeleted"], stats["roomsAlreadyDeleted"], stats["roomsFailed"]) == (0, 1, 0)
    booking.refresh_from_db()
    assert booking.daily_room_name is None
    row = Log.objects.get(type="DAILY_ROOM_DELETED")
    assert row.context["alreadyDeleted"] is True


def test_it_deletes_after_a_500_then_a_200(mocked_daily, finished_booking):
    booking = finished_booking("room-flaky")
    mocked_daily.delete(room_url("room-flaky"), status=500, json={"error": "server-error"})
    mocked_daily.delete(room_url("room-flaky"), json={"deleted": True, "name": "room-flaky"})

    stats = run_cleanup()

    # It should retry within the same run and count one deletion, no failure.
    assert len(mocked_daily.calls) == 2
    assert (stats["roomsDeleted"], stats["roomsFailed"]) == (1, 0)
    booking.refresh_from_db()
    assert booking.daily_room_name is None
    assert not Log.objects.filter(type="DAILY_ROOM_ERROR").exists()


def test_it_retries_a_429_and_deletes(mocked_daily, finished_booking):
    finished_booking("room-throttled")
    mocked_daily.delete(
        room_url("room-throttled"),
        status=429,
        headers={"Retry-After": "0"},
        json={"error": "rate-limit-error"},
    )
    mocked_daily.delete(room_url("room-throttled"), json={"deleted": True})

    stats = run_cleanup()

    # (The wait itself is tested against a real server in test_daily_client.)
    assert len(mocked_daily.calls) == 2
    assert stats["roomsDeleted"] == 1


def test_it_keeps_the_room_and_logs_an_error_when_daily_keeps_failing(
    mocked_daily, finished_booking
):
    booking = finished_booking("room-broken")
    mocked_daily.delete(room_url("room-broken"), status=500, json={"error": "server-error"})

    stats = run_cleanup()

    # It should give up after the bounded retries, log DAILY_ROOM_ERROR, keep the room.
    assert len(mocked_daily.calls) == 4
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
    mocked_daily.replace(responses.DELETE, room_url("room-broken"), json={"deleted": True})
    stats = run_cleanup()
    assert stats["roomsDeleted"] == 1
    booking.refresh_from_db()
    assert booking.daily_room_name is None


def test_it_keeps_the_room_when_daily_times_out(mocked_daily, finished_booking):
    booking = finished_booking("room-slow")
    mocked_daily.delete(room_url("room-slow"), body=requests.exceptions.ReadTimeout("timed out"))

    stats = run_cleanup()

    assert stats["roomsFailed"] == 1
    booking.refresh_from_db()
    assert booking.daily_room_name == "room-slow"
    row = Log.objects.get(type="DAILY_ROOM_ERROR")
    assert "timed out" in row.context["error"]


@pytest.mark.parametrize("status", [Booking.Status.PENDING, Booking.Status.CONFIRMED])
def test_it_never_touches_upcoming_bookings(mocked_daily, finished_booking, status):
    booking = finished_booking("room-upcoming", status=status)
    mocked_daily.delete(ANY_ROOM, json={"deleted": True})

    stats = run_cleanup()

    # It should neither call Daily nor change the booking.
    assert len(mocked_daily.calls) == 0
    assert stats["totalBookings"] == 0
    booking.refresh_from_db()
    assert booking.daily_room_name == "room-upcoming"
    assert booking.daily_room_url == "https://callastar.daily.co/room-upcoming"


def test_it_ignores_finished_bookings_without_a_room(mocked_daily, make_booking):
    make_booking(status=Booking.Status.COMPLETED, daily_room_name=None)
    make_booking(status=Booking.Status.CANCELLED, daily_room_name="")

    stats = run_cleanup()

    assert stats["totalBookings"] == 0
    assert len(mocked_daily.calls) == 0


def test_it_goes_on_after_a_failure_and_its_stats_add_up(mocked_daily, finished_booking):
    finished_booking("room-1")
    failing = finished_booking("room-2")
    finished_booking("room-3")
    finished_booking("room-4", status=Booking.Status.CANCELLED)
    mocked_daily.delete(room_url("room-1"), json={"deleted": True})
    mocked_daily.delete(room_url("room-2"), status=502, body="Bad Gateway")
    mocked_daily.delete(room_url("room-3"), status=404, json={"error": "not-found"})
    mocked_daily.delete(room_url("room-4"), json={"deleted": True})

    stats = run_cleanup()

    # It should process every room, whatever happened to the one before.
    assert (stats["roomsDeleted"], stats["roomsAlreadyDeleted"], stats["roomsFailed"]) == (2, 1, 1)
    assert stats["itemsProcessed"] == stats["totalBookings"] == 4
    assert list(Booking.objects.exclude(daily_room_name=None).values_list("pk", flat=True)) == [
        failing.pk
    ]
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

    def delete_rooms_while_reassigned(names):
        """Daily deletes the room while another process gives the booking a new one."""
        for name in names:
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
    mocked_daily, daily_settings, finished_booking
):
    daily_settings.DAILY_API_KEY = ""
    booking = finished_booking("room-waiting")

    result = run_job("cleanup-daily-rooms")

    # It should fail loudly (CRON_ERROR) with the variable's name, calling nothing.
    assert result.failed
    assert "DAILY_API_KEY" in result.error
    row = Log.objects.get(type="CRON_ERROR")
    assert "DAILY_API_KEY" in row.context["error"]
    assert len(mocked_daily.calls) == 0
    booking.refresh_from_db()
    assert booking.daily_room_name == "room-waiting"


def test_it_lists_the_rooms_in_a_dry_run_even_without_a_key(
    mocked_daily, daily_settings, finished_booking
):
    daily_settings.DAILY_API_KEY = ""
    first = finished_booking("room-a")
    finished_booking("room-b", status=Booking.Status.CANCELLED)

    result = run_job("cleanup-daily-rooms", dry_run=True)

    # It should list what it would delete, with no HTTP, no write and no log row.
    assert not result.failed
    assert result.stats["roomsToDelete"] == ["room-a", "room-b"]
    assert result.stats["totalBookings"] == 2
    assert len(mocked_daily.calls) == 0
    assert not Log.objects.exists()
    first.refresh_from_db()
    assert first.daily_room_name == "room-a"


def test_it_never_writes_the_api_key_into_a_log_row(mocked_daily, finished_booking):
    finished_booking("room-echo")
    mocked_daily.delete(
        room_url("room-echo"),
        status=400,
        json={"error": "invalid-request-error", "info": f"Bearer {DAILY_TEST_API_KEY} is odd"},
    )

    run_job("cleanup-daily-rooms")

    for row in Log.objects.all():
        dumped = json.dumps([row.message, row.context, row.error])
        assert DAILY_TEST_API_KEY not in dumped


def test_the_command_runs_the_job_and_records_the_run(mocked_daily, finished_booking):
    finished_booking("room-cmd")
    mocked_daily.delete(room_url("room-cmd"), json={"deleted": True})
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
    assert row.context["totalBookings"] == 1


def test_the_command_exits_non_zero_without_a_key(mocked_daily, daily_settings):
    daily_settings.DAILY_API_KEY = ""

    with pytest.raises(CommandError, match="DAILY_API_KEY"):
        call_command("cleanup_daily_rooms", stdout=StringIO())


def test_the_command_prints_the_rooms_of_a_dry_run(mocked_daily, finished_booking):
    booking = finished_booking("room-listed")
    out = StringIO()

    call_command("cleanup_daily_rooms", "--dry-run", stdout=out)

    assert f"would delete room room-listed (booking {booking.pk})" in out.getvalue()
    assert len(mocked_daily.calls) == 0


def test_delete_booking_rooms_deletes_and_clears_for_the_admin(mocked_daily, make_booking):
    booking = make_booking(daily_room_name="room-admin", daily_room_url="https://x.daily.co/r")
    mocked_daily.delete(room_url("room-admin"), json={"deleted": True})
    run = job_run()

    delete_booking_rooms(run, booking_ids=[booking.pk], deleted_by="admin")

    # It should delete even a confirmed booking's room when staff ask, and say so.
    booking.refresh_from_db()
    assert booking.daily_room_name is None
    assert run.stats["roomsDeleted"] == 1 and run.stats["withoutRoom"] == 0
    assert Log.objects.get(type="DAILY_ROOM_DELETED").context["deletedBy"] == "admin"

    # It should find nothing left to delete the second time.
    again = job_run()
    delete_booking_rooms(again, booking_ids=[booking.pk])
    assert again.stats["withoutRoom"] == 1 and again.stats["totalBookings"] == 0
    assert len(mocked_daily.calls) == 1


def test_delete_booking_rooms_keeps_the_room_and_logs_when_daily_fails(
    mocked_daily, finished_booking
):
    booking = finished_booking("room-admin-fail")
    mocked_daily.delete(room_url("room-admin-fail"), status=500, json={"error": "server-error"})
    run = job_run()

    delete_booking_rooms(run, booking_ids=[booking.pk], deleted_by="admin")

    # It should count a provider failure against the run and keep the room.
    assert run.stats["roomsFailed"] == 1 and run.every_attempt_failed
    booking.refresh_from_db()
    assert booking.daily_room_name == "room-admin-fail"
    assert Log.objects.get(type="DAILY_ROOM_ERROR").context["requestedBy"] == "admin"
