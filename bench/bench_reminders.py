"""send-booking-reminders against a local SMTP sink, vs. the same messages sent raw.

"ours" is one whole run through the runner (`run_job`: lock, selection, claims, rendering,
one SMTP connection, the per-email EMAIL_SENT rows, the bookings marked done, the CRON_RUN
row). The baseline sends the same number of messages, rendered beforehand, with
`smtplib.SMTP.sendmail` over one connection from the same process to the same sink (an
aiosmtpd server on a thread of this process, tests/smtp_sink.py, counting messages and
keeping none). The note gives the run's SQL query count, which should be the same at every
size.
"""

import os
import resource
import smtplib
from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from bench.harness import Row, Timer
from tests.smtp_sink import running_smtp_sink

SIZES = [int(size) for size in os.environ.get("BENCH_REMINDER_SIZES", "100,1000").split(",")]
# A second series with the sink answering each command after this many seconds (0: off).
LAN_DELAY = float(os.environ.get("BENCH_REMINDER_SMTP_DELAY", "0.001"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
EMAIL_PREFIX = "bench-reminders-"


def create_due_bookings(count, now):
    from django.contrib.auth import get_user_model

    from bookings.models import Booking, Creator

    User = get_user_model()
    users = User.objects.bulk_create(
        User(email=f"{EMAIL_PREFIX}{role}{n}@example.com", name=f"{role} {n}", password="!")
        for n in range(count)
        for role in ("client", "creator")
    )
    creators = Creator.objects.bulk_create(Creator(user=user) for user in users[1::2])
    return Booking.objects.bulk_create(
        Booking(
            client=client,
            creator=creator,
            status=Booking.Status.CONFIRMED,
            starts_at=now + timedelta(minutes=10, milliseconds=index),
            total_price="50.00",
        )
        for index, (client, creator) in enumerate(zip(users[0::2], creators, strict=True))
    )


def delete_bench_data():
    from django.contrib.auth import get_user_model

    from bookings.models import Booking, Creator
    from cronlogs.models import Log

    Booking.objects.filter(client__email__startswith=EMAIL_PREFIX).delete()
    Creator.objects.filter(user__email__startswith=EMAIL_PREFIX).delete()
    get_user_model().objects.filter(email__startswith=EMAIL_PREFIX).delete()
    Log.objects.filter(type="EMAIL_SENT", message__contains="booking_reminder").delete()


def prerendered_messages(bookings):
    """The baseline's input: the same two messages per booking, as bytes, made beforehand."""
    from django.core.mail import EmailMultiAlternatives

    from bookings.emails import booking_page_url, render_booking_reminder

    messages = []
    for booking in bookings:
        client, creator = booking.client, booking.creator.user
        for person, other in ((client, creator), (creator, client)):
            email = render_booking_reminder(
                user_name=person.name,
                other_person_name=other.name,
                call_datetime=booking.starts_at,
                timezone_name=person.timezone,
                url=booking_page_url(booking.pk),
            )
            message = EmailMultiAlternatives(
                email.subject, email.text, "no-reply@callastar.com", [person.email]
            )
            message.attach_alternative(email.html, "text/html")
            messages.append((person.email, message.message().as_bytes(linesep="\r\n")))
    return messages


def send_raw(messages, port):
    client = smtplib.SMTP("127.0.0.1", port, timeout=10)
    try:
        for address, data in messages:
            client.sendmail("no-reply@callastar.com", [address], data)
    finally:
        client.quit()


def median(values):
    return sorted(values)[len(values) // 2]


def run():
    with running_smtp_sink(keep_messages=False) as sink:
        return measure(sink)


def measure(sink):
    from bookings.models import Booking
    from cronlogs.runner import run_job

    smtp = {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": sink.host,
        "EMAIL_PORT": sink.port,
        "EMAIL_USE_TLS": False,
        "EMAIL_USE_SSL": False,
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
    }
    rows = []
    try:
        with override_settings(**smtp):
            series = [(size, 0.0) for size in SIZES]
            if LAN_DELAY:
                series.append((max(SIZES), LAN_DELAY))
            for size, delay in series:
                sink.delay = delay
                ours, baseline, queries = [], [], []
                for _ in range(REPEAT):
                    delete_bench_data()
                    now = timezone.now()
                    create_due_bookings(size, now)
                    bookings = list(
                        Booking.objects.filter(client__email__startswith=EMAIL_PREFIX)
                        .select_related("client", "creator__user")
                        .order_by("pk")
                    )
                    messages = prerendered_messages(bookings)
                    sink.count = 0
                    with Timer() as raw:
                        send_raw(messages, sink.port)
                    assert sink.count == 2 * size, sink.count
                    baseline.append(raw.seconds)

                    sink.count = 0
                    with CaptureQueriesContext(connection) as captured, Timer() as job:
                        result = run_job("send-booking-reminders", now=now)
                    assert not result.failed, result.error
                    assert result.items_processed == sink.count == 2 * size, result.to_dict()
                    ours.append(job.seconds)
                    queries.append(len(captured))
                peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                rows.append(
                    Row(
                        benchmark="send_booking_reminders",
                        size=f"{size} bookings / {2 * size} emails"
                        + (f", SMTP replies after {delay * 1000:g} ms" if delay else ""),
                        ours_s=median(ours),
                        baseline_s=median(baseline),
                        peak_mem_mb=peak_mb,
                        note=f"{max(queries)} SQL queries per run; baseline: pre-rendered "
                        "smtplib.sendmail on one connection",
                    )
                )
    finally:
        delete_bench_data()
    return rows
