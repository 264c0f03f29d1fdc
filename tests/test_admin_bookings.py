"""Admin for users, creators and bookings, and the booking actions."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from bookings.models import Booking
from cronlogs.models import Log
from tests.processes import held_job_lock

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/bookings/booking/"


def run_action(client, action, bookings):
    response = client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [booking.pk for booking in bookings]},
        follow=True,
    )
    assert response.status_code == 200
    return [(message.level_tag, str(message)) for message in get_messages(response.wsgi_request)]


def test_it_renders_the_people_and_booking_pages(staff_client, make_booking):
    booking = make_booking(daily_room_name="room-1")
    client_email, creator_email = booking.client.email, booking.creator.user.email

    # Each page should answer and show the thing it is about.
    for url, shows in (
        ("/admin/bookings/user/", [client_email, creator_email]),
        ("/admin/bookings/user/add/", ['name="email"', 'name="timezone"']),
        (f"/admin/bookings/user/{booking.client_id}/change/", [client_email]),
        ("/admin/bookings/creator/", [str(booking.creator)]),
        (f"/admin/bookings/creator/{booking.creator_id}/change/", ['name="payout_minimum"']),
        (CHANGELIST, [f"Booking #{booking.pk}", "room-1"]),
        (f"{CHANGELIST}?status__exact=CONFIRMED", [f"Booking #{booking.pk}"]),
        (f"{CHANGELIST}?q={booking.pk}", [f"Booking #{booking.pk}"]),
        (f"{CHANGELIST}{booking.pk}/change/", ['value="room-1"', "CONFIRMED"]),
    ):
        response = staff_client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        for text in shows:
            assert text in page, (url, text)
    # A filter should leave out what it does not match.
    cancelled = staff_client.get(f"{CHANGELIST}?status__exact=CANCELLED").content.decode()
    assert f"Booking #{booking.pk}" not in cancelled


def test_it_finds_a_booking_by_its_number(staff_client, make_booking):
    wanted, _ = make_booking(), make_booking()

    response = staff_client.get(CHANGELIST, {"q": f"#{wanted.pk}"})

    assert [booking.pk for booking in response.context["cl"].result_list] == [wanted.pk]


def test_it_creates_a_user_with_an_email_address(staff_client, django_user_model):
    response = staff_client.post(
        "/admin/bookings/user/add/",
        {
            "email": "new.fan@example.com",
            "name": "New Fan",
            "timezone": "America/New_York",
            "usable_password": "true",
            "password1": "a-long-and-unusual-password-42",
            "password2": "a-long-and-unusual-password-42",
        },
    )

    assert response.status_code == 302
    user = django_user_model.objects.get(email="new.fan@example.com")
    assert (user.name, user.timezone) == ("New Fan", "America/New_York")
    assert user.check_password("a-long-and-unusual-password-42")


def test_it_sends_the_reminders_of_the_selected_bookings_now(
    staff_client, make_booking, smtp_settings
):
    # Tomorrow: outside the job's 20-minute window, but staff asked for it.
    booking = make_booking(starts_at=timezone.now() + timedelta(days=1))
    cancelled = make_booking(status=Booking.Status.CANCELLED)

    shown = run_action(staff_client, "send_reminder_now", [booking, cancelled])

    # It should email both people of the confirmed booking and skip the cancelled one.
    assert sorted(smtp_settings.recipients) == sorted(
        [booking.client.email, booking.creator.user.email]
    )
    assert shown == [
        (
            "success",
            "Reminders: 2 email(s) sent, 1 booking(s) skipped (not confirmed or already started).",
        )
    ]
    assert Log.objects.filter(type="EMAIL_SENT", context__bookingId=booking.pk).count() == 2

    # Asking again sends nothing twice.
    shown = run_action(staff_client, "send_reminder_now", [booking])
    assert len(smtp_settings.messages) == 2
    assert "0 email(s) sent, 2 already sent before" in shown[0][1]


def test_it_deletes_the_daily_room_of_the_selected_bookings(staff_client, make_booking, daily_fake):
    with_room = make_booking(
        status=Booking.Status.COMPLETED,
        daily_room_name="room-done",
        daily_room_url="https://callastar.daily.co/room-done",
    )
    gone = make_booking(daily_room_name="room-gone")
    without_room = make_booking()
    daily_fake.add_rooms("room-done")  # room-gone is no longer on Daily

    shown = run_action(staff_client, "delete_daily_room", [with_room, gone, without_room])

    # It should delete through the job's service (one batch), clear the rooms and log who.
    assert daily_fake.batches()[0] == ["room-done", "room-gone"]
    assert shown == [
        ("success", "Daily rooms: 1 deleted, 1 already gone on Daily, 1 without a room.")
    ]
    with_room.refresh_from_db()
    gone.refresh_from_db()
    assert (with_room.daily_room_name, with_room.daily_room_url) == (None, None)
    assert gone.daily_room_name is None
    row = Log.objects.get(type="DAILY_ROOM_DELETED", context__roomId="room-done")
    assert row.context["deletedBy"] == "admin"


def test_it_reports_a_daily_failure_and_keeps_the_room(staff_client, make_booking, daily_fake):
    booking = make_booking(status=Booking.Status.CANCELLED, daily_room_name="room-stuck")
    daily_fake.add_rooms("room-stuck")
    daily_fake.fail_room("room-stuck", status=400, error="invalid-request")

    shown = run_action(staff_client, "delete_daily_room", [booking])

    assert shown[0][0] == "error"
    assert "1 failed (see Daily room logs)" in shown[0][1]
    booking.refresh_from_db()
    assert booking.daily_room_name == "room-stuck"
    assert Log.objects.filter(type="DAILY_ROOM_ERROR").count() == 1


def test_it_names_the_missing_daily_key(staff_client, make_booking, settings):
    settings.DAILY_API_KEY = ""
    booking = make_booking(daily_room_name="room-x")

    shown = run_action(staff_client, "delete_daily_room", [booking])

    assert shown[0][0] == "error"
    assert "DAILY_API_KEY" in shown[0][1]
    booking.refresh_from_db()
    assert booking.daily_room_name == "room-x"


def test_its_actions_run_under_the_jobs_lock_with_a_run_row_naming_who(
    staff_client, admin_user, make_booking, smtp_settings, daily_fake
):
    booking = make_booking(starts_at=timezone.now() + timedelta(days=1), daily_room_name="r-1")
    daily_fake.add_rooms("r-1")

    run_action(staff_client, "send_reminder_now", [booking])
    run_action(staff_client, "delete_daily_room", [booking])

    # It should record each action as a run of its job, started by this staff user.
    runs = {row.context["cronType"]: row for row in Log.objects.filter(type="CRON_RUN")}
    assert set(runs) == {"send-booking-reminders", "cleanup-daily-rooms"}
    for row in runs.values():
        assert (row.context["trigger"], row.context["triggeredBy"]) == ("admin", admin_user.email)
    assert runs["send-booking-reminders"].context["emailsSent"] == 2
    assert runs["cleanup-daily-rooms"].context["roomsDeleted"] == 1


def test_its_actions_do_not_race_a_running_job(staff_client, make_booking, smtp_settings):
    booking = make_booking(starts_at=timezone.now() + timedelta(days=1))

    with held_job_lock("send-booking-reminders"):
        shown = run_action(staff_client, "send_reminder_now", [booking])

    # It should say the job is running, send nothing and record the skip.
    assert shown[0][0] == "warning"
    assert (
        "send-booking-reminders was not run: another run of this job is in progress" in shown[0][1]
    )
    assert smtp_settings.messages == []
    assert Log.objects.get(type="CRON_SKIPPED").context["trigger"] == "admin"
