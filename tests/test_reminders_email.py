"""The reminder email: content, the recipient's local time (across DST) and the link."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from bookings.emails import local_call_time, render_booking_reminder
from bookings.reminders import send_due_reminders
from tests.conftest import job_run

NEW_YEARS_EVE = datetime(2024, 12, 31, 14, 30, tzinfo=UTC)


def render(**overrides):
    fields = {
        "user_name": "John Doe",
        "other_person_name": "Jane Creator",
        "call_datetime": NEW_YEARS_EVE,
        "timezone_name": "Europe/Paris",
        "url": "https://callastar.com/bookings/42",
    }
    return render_booking_reminder(**{**fields, **overrides})


def test_it_renders_names_local_time_and_booking_link_in_both_parts():
    email = render()

    assert email.subject == "🕒 Reminder: Your call is starting soon!"
    for part in (email.text, email.html):
        assert "John Doe" in part
        assert "Jane Creator" in part
        assert "Tuesday, 31 December 2024 at 15:30 CET" in part
        assert "https://callastar.com/bookings/42" in part
        assert "Call a Star" in part
    # It should give the HTML a real button and a mail-client-safe table layout.
    assert 'href="https://callastar.com/bookings/42"' in email.html
    assert "Go to my booking" in email.html
    assert '<table role="presentation"' in email.html
    assert "<style" not in email.html  # inline styles only: many clients drop <style>
    assert "<" not in email.text


def test_it_escapes_names_in_the_html_part():
    email = render(other_person_name="<script>alert(1)</script>")

    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html
    assert "<script>alert(1)</script>" in email.text


def utc(*parts):
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        # Paris springs forward at 01:00 UTC on 31 March 2024.
        (utc(2024, 3, 31, 0, 30), "Europe/Paris", "Sunday, 31 March 2024 at 01:30 CET"),
        (utc(2024, 3, 31, 1, 30), "Europe/Paris", "Sunday, 31 March 2024 at 03:30 CEST"),
        # New York falls back at 06:00 UTC on 3 November 2024: 01:30 happens twice.
        (utc(2024, 11, 3, 5, 30), "America/New_York", "Sunday, 3 November 2024 at 01:30 EDT"),
        (utc(2024, 11, 3, 6, 30), "America/New_York", "Sunday, 3 November 2024 at 01:30 EST"),
        (utc(2024, 12, 31, 14, 30), "Asia/Tokyo", "Tuesday, 31 December 2024 at 23:30 JST"),
        (utc(2024, 12, 31, 14, 30), "Not/A_Zone", "Tuesday, 31 December 2024 at 14:30 UTC"),
    ],
)
def test_it_shows_the_time_in_the_recipients_zone_across_dst(moment, zone, expected):
    assert local_call_time(moment, zone) == expected


@pytest.mark.django_db
def test_it_links_the_booking_page_in_each_recipients_time_never_the_daily_room(
    make_booking, make_user, make_creator, settings
):
    settings.APP_URL = "https://callastar.com"
    now = timezone.now()
    booking = make_booking(
        starts_at=now + timedelta(minutes=15),
        client=make_user(name="Kenji", email="kenji@example.com", timezone="Asia/Tokyo"),
        creator=make_creator(
            user=make_user(name="Ava", email="ava@example.com", timezone="America/New_York")
        ),
        daily_room_name="secret-room",
        daily_room_url="https://callastar.daily.co/secret-room",
    )

    send_due_reminders(job_run(now))

    by_address = {message.to[0]: message for message in mail.outbox}
    for address, zone, other in (
        ("kenji@example.com", "Asia/Tokyo", "Ava"),
        ("ava@example.com", "America/New_York", "Kenji"),
    ):
        message = by_address[address]
        html = message.alternatives[0].content
        expected_time = local_call_time(booking.starts_at, zone)
        for part in (message.body, html):
            assert f"https://callastar.com/bookings/{booking.pk}" in part
            assert expected_time in part
            assert f"Your call with {other}" in part or f"<strong>{other}</strong>" in part
            assert "daily.co" not in part and "secret-room" not in part
