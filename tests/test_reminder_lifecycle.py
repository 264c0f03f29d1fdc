"""Reminders follow the call: moved, cancelled mid-run, odd time zones, one person (issue 14)."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bookings import reminders
from bookings.models import Booking, BookingReminder
from bookings.reminders import remind_bookings_now, send_due_reminders
from cronlogs.models import Log
from tests.conftest import job_run

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(second=0, microsecond=0)


def run(now):
    work = job_run(now)
    send_due_reminders(work)
    return work.stats


def move(booking, starts_at):
    # The platform moves bookings with plain UPDATEs: no model hook sees them.
    Booking.objects.filter(pk=booking.pk).update(starts_at=starts_at)


def message_ids(messages):
    return [message.extra_headers["Message-ID"] for message in messages]


def test_it_reminds_both_people_again_when_the_call_moves(make_booking):
    booking = make_booking(starts_at=NOW + timedelta(minutes=12))
    run(NOW)
    first = list(mail.outbox)
    assert len(first) == 2

    tomorrow = NOW + timedelta(days=1)
    move(booking, tomorrow)
    for before in (20, 15, 10, 5, 1):
        run(tomorrow - timedelta(minutes=before))

    # It should send exactly one more email per person, with Message-IDs of their own.
    again = mail.outbox[2:]
    assert sorted(m.to[0] for m in again) == sorted(m.to[0] for m in first)
    assert set(message_ids(again)).isdisjoint(message_ids(first))
    assert all(f"-{tomorrow:%Y%m%dT%H%M}Z-" in mid for mid in message_ids(again))
    # ...keep what was sent for the old time, and mark the booking done for the new one.
    assert BookingReminder.objects.filter(booking=booking, status="SENT").count() == 4
    booking.refresh_from_db()
    assert booking.reminder_sent


def test_it_reminds_once_for_the_last_time_when_moved_twice(make_booking):
    booking = make_booking(starts_at=NOW + timedelta(minutes=12))
    run(NOW)
    move(booking, NOW + timedelta(days=1))
    run(NOW + timedelta(minutes=1))  # not yet due at the new time
    final = NOW + timedelta(days=2)
    move(booking, final)

    run(final - timedelta(minutes=14))
    run(final - timedelta(minutes=9))

    # It should remind once more for the final time, nothing for the time in between.
    assert len(mail.outbox) == 4
    assert {r.starts_at for r in BookingReminder.objects.filter(status="SENT")} == {
        NOW + timedelta(minutes=12),
        final,
    }


def test_the_admin_sends_the_reminder_for_the_new_time(make_booking):
    booking = make_booking(starts_at=NOW + timedelta(minutes=12))
    run(NOW)
    move(booking, NOW + timedelta(days=1))

    work = job_run(NOW)
    remind_bookings_now(work, booking_ids=[booking.pk])

    # It should not say "already sent": that was for the old time.
    assert work.stats["emailsSent"] == 2 and work.stats["alreadySent"] == 0
    assert len(mail.outbox) == 4


def test_it_ignores_reminder_sent_cleared_by_hand_for_a_reminded_start(make_booking):
    booking = make_booking(starts_at=NOW + timedelta(minutes=12))
    run(NOW)
    Booking.objects.filter(pk=booking.pk).update(reminder_sent=False)

    run(NOW + timedelta(minutes=5))

    # It should not email anyone twice for the same start time.
    assert len(mail.outbox) == 2


def test_it_leaves_a_booking_reminded_by_the_platform_before_this_job_ran(make_booking):
    make_booking(starts_at=NOW + timedelta(minutes=12), reminder_sent=True)

    assert run(NOW)["totalBookings"] == 0
    assert mail.outbox == []


class CancellingOnFirstSendBackend(LocmemBackend):
    """The platform cancels the booking the moment its first reminder goes out."""

    def send_messages(self, messages):
        sent = super().send_messages(messages)
        Booking.objects.filter(status="CONFIRMED").update(status=Booking.Status.CANCELLED)
        return sent


def test_it_does_not_send_the_other_reminder_of_a_call_cancelled_mid_run(make_booking, settings):
    settings.EMAIL_BACKEND = f"{__name__}.CancellingOnFirstSendBackend"
    booking = make_booking(starts_at=NOW + timedelta(minutes=10))

    stats = run(NOW)

    # It should send the first email only, close the other claim and say why.
    assert len(mail.outbox) == 1
    assert stats["emailsSent"] == 1 and stats["emailsSkipped"] == 1
    skipped = BookingReminder.objects.get(booking=booking, status="SKIPPED")
    assert "CANCELLED now, not CONFIRMED" in skipped.last_error
    row = Log.objects.get(type="EMAIL_SKIPPED")
    assert row.context["bookingId"] == booking.pk
    assert "CANCELLED" in row.context["reason"]
    assert not BookingReminder.objects.filter(status__in=["PENDING", "SENDING"]).exists()


def test_it_does_not_send_for_a_call_moved_between_claim_and_send(make_booking, monkeypatch):
    booking = make_booking(starts_at=NOW + timedelta(minutes=10))
    later = NOW + timedelta(hours=3)
    claim = reminders.claim_reminders

    def claim_then_move(*args, **kwargs):
        claimed = claim(*args, **kwargs)
        move(booking, later)
        return claimed

    monkeypatch.setattr(reminders, "claim_reminders", claim_then_move)
    stats = run(NOW)
    monkeypatch.undo()

    # It should send nothing for the old time, and remind for the new one in its window.
    assert mail.outbox == [] and stats["emailsSkipped"] == 2
    assert "moved to" in Log.objects.filter(type="EMAIL_SKIPPED").first().context["reason"]
    run(later - timedelta(minutes=15))
    assert len(mail.outbox) == 2


def test_it_reminds_a_call_confirmed_again_after_a_cancellation_mid_run(make_booking, settings):
    settings.EMAIL_BACKEND = f"{__name__}.CancellingOnFirstSendBackend"
    booking = make_booking(starts_at=NOW + timedelta(minutes=10))
    run(NOW)
    assert len(mail.outbox) == 1

    # The call is confirmed again, at the same time, before it starts.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    Booking.objects.filter(pk=booking.pk).update(status=Booking.Status.CONFIRMED)
    stats = run(NOW + timedelta(minutes=1))

    # It should send the reminder it had skipped, and only that one.
    assert stats["emailsSent"] == 1
    assert sorted(m.to[0] for m in mail.outbox) == sorted(
        [booking.client.email, booking.creator.user.email]
    )
    assert set(booking.reminders.values_list("status", flat=True)) == {"SENT"}


def test_it_reminds_a_call_moved_away_and_back_between_claim_and_send(make_booking, monkeypatch):
    start = NOW + timedelta(minutes=10)
    booking = make_booking(starts_at=start)
    claim = reminders.claim_reminders

    def claim_then_move(*args, **kwargs):
        claimed = claim(*args, **kwargs)
        move(booking, start + timedelta(hours=3))
        return claimed

    with monkeypatch.context() as patch:
        patch.setattr(reminders, "claim_reminders", claim_then_move)
        run(NOW)
    assert mail.outbox == []

    # It is moved back to its first time: it should be reminded for it after all.
    move(booking, start)
    run(NOW + timedelta(minutes=1))
    assert len(mail.outbox) == 2


@pytest.mark.parametrize("zone", ["", "Mars/Olympus_Mons"])
def test_it_shows_an_unknown_time_zone_in_the_default_one_and_warns_once(
    make_booking, make_user, settings, zone
):
    settings.DEFAULT_USER_TIMEZONE = "Europe/Lisbon"
    fan = make_user(timezone=zone, email="fan@example.com")
    make_booking(client=fan, starts_at=NOW + timedelta(minutes=10))
    make_booking(client=fan, starts_at=NOW + timedelta(minutes=12))

    run(NOW)

    # It should write the call time in the default zone, and warn once per run, naming the user.
    body = next(m.body for m in mail.outbox if m.to == ["fan@example.com"])
    assert " WET" in body or " WEST" in body
    warnings = Log.objects.filter(type="DATA_WARNING")
    assert warnings.count() == 1
    warning = warnings.get()
    assert (warning.level, warning.context["userId"], warning.context["value"]) == (
        "WARNING",
        fan.pk,
        zone,
    )
    assert warning.context["fallback"] == "Europe/Lisbon"


def test_it_sends_one_reminder_when_client_and_creator_are_the_same_person(
    make_booking, make_creator, make_user
):
    person = make_user(email="both@example.com")
    booking = make_booking(
        client=person, creator=make_creator(user=person), starts_at=NOW + timedelta(minutes=10)
    )

    stats = run(NOW)

    # It should email that person once, and count the booking done.
    assert [m.to for m in mail.outbox] == [["both@example.com"]]
    assert stats["emailsSent"] == 1
    booking.refresh_from_db()
    assert booking.reminder_sent
    assert BookingReminder.objects.get(booking=booking, recipient="CREATOR").status == "SKIPPED"
    assert run(NOW + timedelta(minutes=5))["emailsSent"] == 0


def test_it_works_through_many_bookings_a_chunk_at_a_time(make_booking, monkeypatch):
    def queries(count, now):
        for index in range(count):
            make_booking(starts_at=now + timedelta(minutes=5, seconds=index))
        with CaptureQueriesContext(connection) as captured:
            stats = run(now)
        assert stats["emailsSent"] == 2 * count
        return len(captured)

    monkeypatch.setattr(reminders, "CHUNK_BOOKINGS", 3)

    # It should send every reminder once, in chunks, each chunk costing the same queries.
    nothing_due = queries(0, NOW)
    one_chunk = queries(3, NOW + timedelta(hours=1))
    three_chunks = queries(9, NOW + timedelta(hours=2))
    assert len(mail.outbox) == 24
    assert three_chunks - nothing_due == 3 * (one_chunk - nothing_due)
