"""send-booking-reminders: selection, exactly-once delivery, failures and the EMAIL_* rows."""

import smtplib
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bookings import emails, reminder_sending, reminders
from bookings.models import Booking, BookingReminder
from bookings.reminders import remind_bookings_now, send_due_reminders
from cronlogs.models import Log
from cronlogs.runner import run_job
from tests.conftest import job_run

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def run(now=NOW, dry_run=False):
    work = job_run(now, dry_run=dry_run)
    send_due_reminders(work)
    return work.stats


def remind_now(bookings, now=NOW):
    work = job_run(now)
    remind_bookings_now(work, booking_ids=[booking.pk for booking in bookings])
    return work.stats


def due_booking(make_booking, minutes=10, **fields):
    return make_booking(starts_at=NOW + timedelta(minutes=minutes), **fields)


def reminder(booking, recipient):
    return BookingReminder.objects.get(booking=booking, recipient=recipient)


class TemporarilyRefusingBackend(LocmemBackend):
    """Answers 450 (try again later) for the addresses in `refused`."""

    refused = set()

    def send_messages(self, messages):
        for message in messages:
            for address in message.to:
                if address in self.refused:
                    raise smtplib.SMTPRecipientsRefused({address: (450, b"Mailbox busy")})
        return super().send_messages(messages)


class DisconnectingOnceBackend(LocmemBackend):
    """Drops the connection on the first message, like a server restarting mid-run."""

    opened = 0
    dropped = False

    def open(self):
        type(self).opened += 1
        return super().open()

    def send_messages(self, messages):
        if not type(self).dropped:
            type(self).dropped = True
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return super().send_messages(messages)


def test_it_sends_both_reminders_of_a_due_booking(make_booking, make_user, make_creator):
    client = make_user(name="John Doe", email="john@example.com")
    creator = make_creator(user=make_user(name="Jane Creator", email="jane@example.com"))
    booking = due_booking(make_booking, client=client, creator=creator)

    stats = run()

    # It should email the client about the creator and the creator about the client.
    by_address = {message.to[0]: message for message in mail.outbox}
    assert sorted(by_address) == ["jane@example.com", "john@example.com"]
    for message in mail.outbox:
        assert message.subject == "🕒 Reminder: Your call is starting soon!"
        assert f"/bookings/{booking.pk}" in message.body
        assert message.alternatives[0].mimetype == "text/html"
    assert "Hi John Doe" in by_address["john@example.com"].body
    assert "Your call with Jane Creator" in by_address["john@example.com"].body
    assert "Your call with John Doe" in by_address["jane@example.com"].body
    # It should report the run's stats with itemsProcessed = emails sent.
    assert stats["totalBookings"] == 1
    assert stats["emailsSent"] == stats["itemsProcessed"] == 2
    assert stats["emailsFailed"] == 0
    assert set(stats["timeWindow"]) == {"minTime", "maxTime"}
    # It should mark the booking and both recipients done.
    booking.refresh_from_db()
    assert booking.reminder_sent
    assert set(booking.reminders.values_list("status", flat=True)) == {"SENT"}


def test_it_writes_an_email_sent_row_per_email_with_the_seeds_context(
    make_booking, make_user, make_creator
):
    client = make_user(name="John Doe", email="john@example.com")
    creator = make_creator(user=make_user(name="Jane Creator", email="jane@example.com"))
    booking = due_booking(make_booking, client=client, creator=creator)

    run()

    rows = {row.context["emailType"]: row for row in Log.objects.filter(type="EMAIL_SENT")}
    assert set(rows) == {"booking_reminder_client", "booking_reminder_creator"}
    call_time = booking.starts_at.isoformat().replace("+00:00", "Z")
    assert rows["booking_reminder_client"].context == {
        "bookingId": booking.pk,
        "userId": client.pk,
        "emailType": "booking_reminder_client",
        "recipientEmail": "john@example.com",
        "recipientName": "John Doe",
        "creatorName": "Jane Creator",
        "callDateTime": call_time,
    }
    assert rows["booking_reminder_creator"].context == {
        "bookingId": booking.pk,
        "userId": creator.user.pk,
        "emailType": "booking_reminder_creator",
        "recipientEmail": "jane@example.com",
        "recipientName": "Jane Creator",
        "clientName": "John Doe",
        "callDateTime": call_time,
    }
    assert {(row.status, row.level) for row in rows.values()} == {("SUCCESS", "INFO")}


def test_it_selects_confirmed_bookings_starting_within_20_minutes_that_have_not_started(
    make_booking,
):
    due = [
        due_booking(make_booking, minutes=1),
        due_booking(make_booking, minutes=15),
        due_booking(make_booking, minutes=20),
    ]
    for booking in (
        due_booking(make_booking, minutes=21),
        due_booking(make_booking, minutes=0),
        due_booking(make_booking, minutes=-1),
        due_booking(make_booking, minutes=10, status=Booking.Status.PENDING),
        due_booking(make_booking, minutes=10, status=Booking.Status.CANCELLED),
        due_booking(make_booking, minutes=10, reminder_sent=True),
    ):
        booking.client.email = f"not-due-{booking.pk}@example.com"
        booking.client.save()

    stats = run()

    # It should remind exactly the three due bookings, both people each.
    assert stats["totalBookings"] == 3
    assert len(mail.outbox) == 6
    assert not any(message.to[0].startswith("not-due-") for message in mail.outbox)
    assert set(
        Booking.objects.filter(reminder_sent=True, status="CONFIRMED").values_list("pk", flat=True)
    ) >= {booking.pk for booking in due}


def test_it_follows_the_lead_and_cadence_settings(make_booking, settings):
    settings.REMINDER_LEAD_MINUTES, settings.REMINDER_CADENCE_MINUTES = 30, 10
    due_booking(make_booking, minutes=39)
    due_booking(make_booking, minutes=41)

    stats = run()

    assert stats["totalBookings"] == 1
    assert stats["timeWindow"]["maxTime"] == (NOW + timedelta(minutes=40)).isoformat().replace(
        "+00:00", "Z"
    )


def test_it_catches_up_after_a_missed_run_but_never_after_the_start(make_booking):
    starts_at = NOW + timedelta(minutes=20)
    missed = make_booking(starts_at=starts_at)
    started = make_booking(starts_at=starts_at - timedelta(minutes=30))

    # The runs at -20, -15, -10 and -5 minutes were missed (cron down 30 minutes).
    stats = run(now=starts_at - timedelta(minutes=2))

    # It should still remind the call that has not started, and never the one that has.
    assert stats["totalBookings"] == 1
    assert sorted(message.to[0] for message in mail.outbox) == sorted(
        [missed.client.email, missed.creator.user.email]
    )
    assert not started.reminders.exists()


def test_it_sends_each_reminder_once_across_runs(make_booking):
    booking = due_booking(make_booking, minutes=18)

    run(now=NOW)
    stats = run(now=NOW + timedelta(minutes=5))

    # It should not send again on the next run.
    assert len(mail.outbox) == 2
    assert stats["totalBookings"] == 0
    assert booking.reminders.get(recipient="CLIENT").attempts == 1


def test_it_gives_up_on_missing_or_invalid_addresses_and_carries_on(
    make_booking, make_user, make_creator
):
    no_email = due_booking(make_booking, client=make_user(email="placeholder@example.com"))
    type(no_email.client).objects.filter(pk=no_email.client.pk).update(email="")
    invalid = due_booking(
        make_booking, creator=make_creator(user=make_user(email="not-an-address"))
    )
    fine = due_booking(make_booking)

    stats = run()

    # It should log a clear EMAIL_ERROR for each, send the rest and not crash.
    errors = {row.context["bookingId"]: row for row in Log.objects.filter(type="EMAIL_ERROR")}
    assert set(errors) == {no_email.pk, invalid.pk}
    assert errors[no_email.pk].context["error"] == (
        f"The client (user {no_email.client.pk}) has no email address"
    )
    assert "has an invalid email address: 'not-an-address'" in errors[invalid.pk].context["error"]
    assert errors[invalid.pk].context["emailType"] == "booking_reminder_creator"
    assert errors[invalid.pk].context["willRetry"] is False
    assert stats["emailsSent"] == 4 and stats["emailsFailed"] == 2
    assert sorted(message.to[0] for message in mail.outbox) == sorted(
        [
            no_email.creator.user.email,
            invalid.client.email,
            fine.client.email,
            fine.creator.user.email,
        ]
    )
    # It should not retry them: both reminders of each booking are done.
    assert reminder(no_email, "CLIENT").status == "FAILED"
    assert Booking.objects.filter(reminder_sent=True).count() == 3
    assert run(now=NOW + timedelta(minutes=5))["totalBookings"] == 0


def test_it_retries_a_temporarily_refused_recipient_only(make_booking, settings):
    settings.EMAIL_BACKEND = f"{__name__}.TemporarilyRefusingBackend"
    booking = due_booking(make_booking, minutes=18)
    TemporarilyRefusingBackend.refused = {booking.client.email}

    first = run(now=NOW)

    # It should send to the creator, log the client's failure and keep it due.
    assert [message.to[0] for message in mail.outbox] == [booking.creator.user.email]
    assert first["emailsFailed"] == 1
    error = Log.objects.get(type="EMAIL_ERROR")
    assert error.context["willRetry"] is True
    assert "Mailbox busy" in error.context["error"]
    assert reminder(booking, "CLIENT").status == "PENDING"
    booking.refresh_from_db()
    assert not booking.reminder_sent

    TemporarilyRefusingBackend.refused = set()
    second = run(now=NOW + timedelta(minutes=5))

    # It should then send to the client only: the creator already has theirs.
    assert [message.to[0] for message in mail.outbox] == [
        booking.creator.user.email,
        booking.client.email,
    ]
    assert second["emailsSent"] == 1 and second["alreadySent"] == 1
    assert reminder(booking, "CLIENT").attempts == 2
    booking.refresh_from_db()
    assert booking.reminder_sent


def test_it_reconnects_after_a_dropped_connection_and_retries_that_email_later(
    make_booking, settings
):
    settings.EMAIL_CONNECTIONS = 1
    settings.EMAIL_BACKEND = f"{__name__}.DisconnectingOnceBackend"
    DisconnectingOnceBackend.opened, DisconnectingOnceBackend.dropped = 0, False
    first = due_booking(make_booking, minutes=5)
    second = due_booking(make_booking, minutes=6)

    stats = run()

    # It should reconnect once, send the three others and keep the first one due.
    assert DisconnectingOnceBackend.opened == 2
    assert stats["emailsSent"] == 3 and stats["emailsFailed"] == 1
    assert reminder(first, "CLIENT").status == "PENDING"
    assert sorted(message.to[0] for message in mail.outbox) == sorted(
        [first.creator.user.email, second.client.email, second.creator.user.email]
    )
    assert run(now=NOW + timedelta(minutes=1))["emailsSent"] == 1
    assert mail.outbox[-1].to == [first.client.email]


@pytest.mark.parametrize("connections", [1, 2])
def test_it_sends_over_email_connections_connections(
    make_booking, smtp_settings, monkeypatch, settings, connections
):
    settings.EMAIL_CONNECTIONS = connections
    opened = []
    original_open = smtplib.SMTP.connect

    def counting_connect(self, *args, **kwargs):
        opened.append(args)
        return original_open(self, *args, **kwargs)

    monkeypatch.setattr(smtplib.SMTP, "connect", counting_connect)
    for minutes in (5, 10, 15):
        due_booking(make_booking, minutes=minutes)

    stats = run()

    # It should open each connection once for the whole run, and send every message once.
    assert stats["emailsSent"] == 6
    assert len(smtp_settings.messages) == 6
    assert len(opened) == connections


def test_it_retries_everything_after_a_run_with_smtp_down(make_booking, smtp_settings, settings):
    bookings = [due_booking(make_booking, minutes=minutes) for minutes in (12, 17)]
    settings.EMAIL_PORT = 1  # Nothing listens there: connection refused.

    down = run_job("send-booking-reminders", now=NOW)

    # It should log every email as an EMAIL_ERROR, fail the run loudly and mark nothing.
    assert down.failed
    assert "SMTP server unavailable" in down.error
    assert "4 reminder(s) will be retried" in down.error
    errors = Log.objects.filter(type="EMAIL_ERROR")
    assert errors.count() == 4
    assert all(row.context["willRetry"] for row in errors)
    assert Log.objects.get(type="CRON_ERROR").context["emailsFailed"] == 4
    assert not Booking.objects.filter(reminder_sent=True).exists()
    assert set(BookingReminder.objects.values_list("status", flat=True)) == {"PENDING"}

    settings.EMAIL_PORT = smtp_settings.port
    back = run_job("send-booking-reminders", now=NOW + timedelta(minutes=5))

    # It should send them all on the next run, while the calls have not started.
    assert not back.failed
    assert back.items_processed == 4
    assert sorted(smtp_settings.recipients) == sorted(
        address
        for booking in bookings
        for address in (booking.client.email, booking.creator.user.email)
    )
    assert Booking.objects.filter(reminder_sent=True).count() == 2


def test_it_gives_up_on_an_address_the_server_rejects(make_booking, smtp_settings):
    rejected = due_booking(make_booking, minutes=10)
    other = due_booking(make_booking, minutes=11)
    smtp_settings.rejected_recipients.add(rejected.client.email)

    stats = run()

    # It should deliver the three others and record the 550 as given up.
    assert sorted(smtp_settings.recipients) == sorted(
        [rejected.creator.user.email, other.client.email, other.creator.user.email]
    )
    assert stats["emailsSent"] == 3 and stats["emailsFailed"] == 1
    error = Log.objects.get(type="EMAIL_ERROR")
    assert error.context["recipientEmail"] == rejected.client.email
    assert "550" in error.context["error"]
    assert reminder(rejected, "CLIENT").status == "FAILED"

    # It should not try the rejected address again.
    run(now=NOW + timedelta(minutes=5))
    assert len(smtp_settings.messages) == 3
    assert Log.objects.filter(type="EMAIL_ERROR").count() == 1


def test_it_reclaims_only_stale_claims(make_booking):
    crashed = due_booking(make_booking, minutes=10)
    running = due_booking(make_booking, minutes=12)
    for booking, claimed in ((crashed, timedelta(minutes=6)), (running, timedelta(minutes=1))):
        BookingReminder.objects.create(
            booking=booking,
            recipient="CLIENT",
            starts_at=booking.starts_at,
            status="SENDING",
            claimed_at=NOW - claimed,
        )

    stats = run()

    # It should retry the claim a crashed run left 6 minutes ago, not one still in progress.
    sent_to = sorted(message.to[0] for message in mail.outbox)
    assert sent_to == sorted(
        [crashed.client.email, crashed.creator.user.email, running.creator.user.email]
    )
    assert stats["alreadySent"] == 1
    assert reminder(running, "CLIENT").status == "SENDING"


def test_it_stops_sending_before_its_claims_could_go_stale(make_booking, monkeypatch):
    monkeypatch.setattr(reminders, "SEND_DEADLINE", timedelta(0))
    booking = due_booking(make_booking)

    stats = run()

    # It should put the unsent claims back in the queue for the next run.
    assert mail.outbox == []
    assert stats["emailsDeferred"] == 2
    assert set(booking.reminders.values_list("status", flat=True)) == {"PENDING"}
    assert not Log.objects.filter(type__startswith="EMAIL").exists()


def test_it_gives_up_on_a_call_that_starts_during_the_run(make_booking, monkeypatch):
    booking = due_booking(make_booking, minutes=1)

    def slow_clock(now):
        # Each reading of the run's clock is 45 s after the last: the claim at +0 s, the
        # client's email at +45 s, the creator's at +90 s, past the start at +60 s.
        readings = iter(range(0, 10_000, 45))
        return lambda _reading: now + timedelta(seconds=next(readings))

    monkeypatch.setattr(reminders, "monotonic_clock", slow_clock)

    stats = run()

    # The second email would come after the start: it should not be sent.
    assert len(mail.outbox) == 1
    assert stats["emailsFailed"] == 1
    error = Log.objects.get(type="EMAIL_ERROR")
    assert error.context["error"] == "The call started before its reminder could be sent"
    booking.refresh_from_db()
    assert booking.reminder_sent


def test_it_records_what_was_sent_when_the_run_crashes(make_booking, monkeypatch, settings):
    settings.EMAIL_CONNECTIONS = 1
    bookings = [due_booking(make_booking, minutes=minutes) for minutes in (5, 6)]
    real_render = emails.render_booking_reminder
    calls = []

    def render_then_crash(**kwargs):
        calls.append(kwargs)
        if len(calls) == 3:
            raise RuntimeError("template bug")
        return real_render(**kwargs)

    monkeypatch.setattr(emails, "render_booking_reminder", render_then_crash)

    with pytest.raises(RuntimeError, match="template bug"):
        run()

    # It should keep the two sent reminders (the clients', sent first) SENT and return the
    # others to the queue.
    assert len(mail.outbox) == 2
    statuses = list(
        BookingReminder.objects.order_by("recipient", "booking__starts_at").values_list(
            "status", flat=True
        )
    )
    assert statuses == ["SENT", "SENT", "PENDING", "PENDING"]
    assert Log.objects.filter(type="EMAIL_SENT").count() == 2
    assert not Booking.objects.filter(pk__in=[b.pk for b in bookings], reminder_sent=True)


def test_it_reports_without_sending_on_a_dry_run(make_booking):
    due_booking(make_booking)
    due_booking(make_booking, minutes=12)

    stats = run(dry_run=True)

    assert stats["totalBookings"] == 2
    assert stats["emailsToSend"] == stats["itemsProcessed"] == 4
    assert mail.outbox == []
    assert not BookingReminder.objects.exists()
    assert not Log.objects.exists()


def test_it_uses_a_constant_number_of_queries(make_booking):
    def queries_for(count, now):
        for index in range(count):
            make_booking(starts_at=now + timedelta(minutes=5, seconds=index))
        with CaptureQueriesContext(connection) as captured:
            run(now=now)
        return len(captured)

    # It should not issue a query per booking or per email.
    few = queries_for(2, NOW)
    many = queries_for(20, NOW + timedelta(hours=1))
    assert len(mail.outbox) == 44
    assert few == many


def test_it_sends_now_for_the_bookings_staff_picked(make_booking):
    tomorrow = make_booking(starts_at=NOW + timedelta(days=1))
    already = due_booking(make_booking)
    started = make_booking(starts_at=NOW - timedelta(minutes=5))
    pending = make_booking(starts_at=NOW + timedelta(days=1), status=Booking.Status.PENDING)
    run()
    mail.outbox.clear()

    stats = remind_now([tomorrow, already, started, pending])

    # It should send the far-away booking's reminders, and not resend or send after start.
    assert sorted(message.to[0] for message in mail.outbox) == sorted(
        [tomorrow.client.email, tomorrow.creator.user.email]
    )
    assert stats == {
        "totalBookings": 4,
        "skipped": 2,
        "emailsSent": 2,
        "emailsFailed": 0,
        "alreadySent": 2,
        "emailsDeferred": 0,
        "emailsSkipped": 0,
        "itemsProcessed": 2,
    }
    # ...and the cron run 15 minutes before the call should not send them again.
    assert run(now=tomorrow.starts_at - timedelta(minutes=15))["totalBookings"] == 0
    assert len(mail.outbox) == 2


def test_it_reports_smtp_down_to_the_admin_action(make_booking, smtp_settings, settings):
    booking = make_booking(starts_at=NOW + timedelta(hours=2))
    settings.EMAIL_PORT = 1

    stats = remind_now([booking])

    assert stats["emailsFailed"] == 2
    assert stats["error"].startswith("SMTP server unavailable: ")
    assert set(booking.reminders.values_list("status", flat=True)) == {"PENDING"}


def test_it_runs_from_the_command(make_booking):
    due_booking(make_booking)
    out = StringIO()

    call_command("send_booking_reminders", stdout=out)

    assert "send-booking-reminders: done; processed 2 items" in out.getvalue()
    row = Log.objects.get(type="CRON_RUN")
    assert row.context["cronType"] == "send-booking-reminders"
    assert row.context["emailsSent"] == 2
    assert row.context["totalBookings"] == 1


class OneBrokenConnectionBackend(LocmemBackend):
    """The first connection a run opens cannot be opened; the others work."""

    opened = 0
    lock = threading.Lock()

    def open(self):
        with type(self).lock:
            type(self).opened += 1
            first = type(self).opened == 1
        if first:
            raise ConnectionRefusedError("relay 1 refused the connection")
        return super().open()


def test_a_connection_that_fails_leaves_its_messages_to_the_others(make_booking, settings):
    settings.EMAIL_CONNECTIONS = 3
    settings.EMAIL_BACKEND = f"{__name__}.OneBrokenConnectionBackend"
    OneBrokenConnectionBackend.opened = 0
    bookings = [due_booking(make_booking, minutes=minutes) for minutes in (5, 6, 7, 8)]

    stats = run()

    # It should send every reminder over the connections that work, and fail none.
    assert stats["emailsSent"] == 8 and stats["emailsFailed"] == 0
    # ...and say in the run's row that a connection could not be used.
    assert "relay 1 refused the connection" in stats["smtpConnectionError"]
    assert sorted(m.to[0] for m in mail.outbox) == sorted(
        address for b in bookings for address in (b.client.email, b.creator.user.email)
    )


def test_it_fails_the_run_when_the_relay_refuses_to_relay_for_us(make_booking, smtp_settings):
    booking = due_booking(make_booking, minutes=10)
    smtp_settings.refuse_every_recipient_with = "554 5.7.1 Relay access denied"

    result = run_job("send-booking-reminders", now=NOW)

    # It should fail the run, not give the recipients up: the relay refuses us, not them.
    assert result.failed and result.items_failed == 2
    assert Log.objects.get(type="CRON_ERROR").level == "ERROR"
    assert reminder(booking, "CLIENT").status == "PENDING"
    assert (
        "5.7.1 Relay access denied"
        in Log.objects.filter(type="EMAIL_ERROR").first().context["error"]
    )

    # It should send both once the relay takes mail from us again.
    smtp_settings.refuse_every_recipient_with = ""
    run(now=NOW + timedelta(minutes=5))
    assert sorted(smtp_settings.recipients) == sorted(
        [booking.client.email, booking.creator.user.email]
    )


@pytest.mark.parametrize("connections", [1, 2])
def test_a_sender_raising_mid_run_never_makes_the_next_run_send_again(
    make_booking, smtp_settings, settings, monkeypatch, connections
):
    settings.EMAIL_CONNECTIONS = connections
    bookings = [due_booking(make_booking, minutes=10), due_booking(make_booking, minutes=11)]
    build = reminder_sending.reminder_message
    built = []

    def build_then_break(**kwargs):
        built.append(kwargs["person"].email)
        if len(built) == 2:
            raise RuntimeError("template exploded")
        return build(**kwargs)

    monkeypatch.setattr(reminder_sending, "reminder_message", build_then_break)
    result = run_job("send-booking-reminders", now=NOW)
    monkeypatch.undo()

    # It should fail the run, and record the one email that did go out as sent.
    assert result.failed and "template exploded" in result.error
    [sent] = smtp_settings.recipients
    assert [reminder(b, "CLIENT").status for b in bookings].count("SENT") == 1

    # It should send the next run only what was not sent.
    run(now=NOW + timedelta(minutes=1))
    everyone = [address for b in bookings for address in (b.client.email, b.creator.user.email)]
    assert sorted(smtp_settings.recipients) == sorted(everyone)
    assert smtp_settings.recipients.count(sent) == 1
