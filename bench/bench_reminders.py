"""send-booking-reminders against a local SMTP sink: three rows (issue 12).

1. **A relay answering each message after 20 ms** — 1,000 due bookings, 2,000 emails, one
   whole run through the runner over EMAIL_CONNECTIONS connections. Baseline: the bound
   that latency sets, 2,000 × 20 ms / EMAIL_CONNECTIONS. Goal ≤ 1.3×.
2. **The same sink answering at once** — the job's own overhead. Baseline: the standard
   library building the same multipart message (text and HTML parts, the same headers)
   from the same rendered text and sending it with `smtplib` over one connection. Goal ≤ 1.5×.
3. **1,000 vs 10,000 due bookings** — `manage.py send_booking_reminders` in a child
   process, whose own peak memory `wait4` reports, and the SQL queries of an in-process
   run. Goal: peak memory within 1.2× of the 1,000 run; queries per chunk constant.

The sink (tests/smtp_sink.py) is an aiosmtpd server in a child process of its own (a relay
is not in the sender's process; in ours it would compete for the interpreter lock with the
sender's threads), counting messages and keeping none.
"""

import os
import smtplib
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from bench.harness import Row, Timer, run_manage
from bookings.reminders import CHUNK_BOOKINGS
from tests.smtp_sink import smtp_sink_process

RELAY_DELAY = float(os.environ.get("BENCH_REMINDER_RELAY_DELAY", "0.020"))
RELAY_BOOKINGS = int(os.environ.get("BENCH_REMINDER_RELAY_BOOKINGS", "1000"))
MEMORY_SIZES = [
    int(size) for size in os.environ.get("BENCH_REMINDER_MEMORY_SIZES", "1000,10000").split(",")
]
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
EMAIL_PREFIX = "bench-reminders-"
FROM = "Call a Star <no-reply@callastar.com>"


def create_due_bookings(count, now):
    from django.contrib.auth import get_user_model

    from bookings.models import Booking, Creator

    User = get_user_model()
    users = User.objects.bulk_create(
        (
            User(email=f"{EMAIL_PREFIX}{role}{n}@example.com", name=f"{role} {n}", password="!")
            for n in range(count)
            for role in ("client", "creator")
        ),
        batch_size=5000,
    )
    creators = Creator.objects.bulk_create(
        (Creator(user=user) for user in users[1::2]), batch_size=5000
    )
    Booking.objects.bulk_create(
        (
            Booking(
                client=client,
                creator=creator,
                status=Booking.Status.CONFIRMED,
                starts_at=now + timedelta(minutes=10, milliseconds=index),
                total_price="50.00",
            )
            for index, (client, creator) in enumerate(zip(users[0::2], creators, strict=True))
        ),
        batch_size=5000,
    )


def delete_bench_data():
    from django.contrib.auth import get_user_model

    from bookings.models import Booking, Creator
    from cronlogs.models import Log

    Booking.objects.filter(client__email__startswith=EMAIL_PREFIX).delete()
    Creator.objects.filter(user__email__startswith=EMAIL_PREFIX).delete()
    get_user_model().objects.filter(email__startswith=EMAIL_PREFIX).delete()
    Log.objects.filter(type__in=["EMAIL_SENT", "CRON_RUN", "CRON_STARTED"]).delete()


def rendered_reminders(now):
    """(to, subject, text, html) per email the run will send, rendered beforehand."""
    from bookings.emails import booking_page_url, render_booking_reminder
    from bookings.models import Booking

    bookings = (
        Booking.objects.filter(client__email__startswith=EMAIL_PREFIX)
        .select_related("client", "creator__user")
        .order_by("pk")
    )
    reminders = []
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
            reminders.append((person.email, email.subject, email.text, email.html))
    return reminders


def stdlib_send(reminders, port):
    """The baseline: stdlib `email` builds each multipart message, one smtplib connection."""
    client = smtplib.SMTP("127.0.0.1", port, timeout=10)
    try:
        for to, subject, text, html in reminders:
            message = EmailMessage()
            message["Subject"], message["From"], message["To"] = subject, FROM, to
            message["Date"], message["Message-ID"] = formatdate(localtime=True), make_msgid()
            message.set_content(text)
            message.add_alternative(html, subtype="html")
            client.send_message(message)
    finally:
        client.quit()


def chunks(size):
    return -(-size // CHUNK_BOOKINGS)


def median(values):
    return sorted(values)[len(values) // 2]


def smtp_settings(sink):
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": sink.host,
        "EMAIL_PORT": sink.port,
        "EMAIL_USE_TLS": False,
        "EMAIL_USE_SSL": False,
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
    }


def one_run(sink, size):
    """Set up `size` due bookings and time one run of the job; returns (seconds, queries)."""
    from cronlogs.runner import run_job

    delete_bench_data()
    now = timezone.now()
    create_due_bookings(size, now)
    sink.reset()
    with CaptureQueriesContext(connection) as captured, Timer() as job:
        result = run_job("send-booking-reminders", now=now)
    assert not result.failed, result.error
    assert result.items_processed == sink.count == 2 * size, result.to_dict()
    return job.seconds, len(captured)


def relay_row(sink):
    sink.set_message_delay(RELAY_DELAY)
    try:
        ours = median([one_run(sink, RELAY_BOOKINGS)[0] for _ in range(REPEAT)])
        reminders = rendered_reminders(timezone.now())
        backend_alone = median([django_backend_alone(reminders) for _ in range(REPEAT)])
    finally:
        sink.set_message_delay(0)
        delete_bench_data()
    connections = settings.EMAIL_CONNECTIONS
    bound = 2 * RELAY_BOOKINGS * RELAY_DELAY / connections
    size = f"{2 * RELAY_BOOKINGS} emails, {RELAY_DELAY * 1000:g} ms a message"
    return [
        Row(
            benchmark="send_booking_reminders, relay",
            size=size,
            ours_s=ours,
            baseline_s=bound,
            note=f"baseline: emails x delay / EMAIL_CONNECTIONS ({connections}); goal <= 1.3x",
        ),
        Row(
            benchmark="Django's SMTP backend alone, relay",
            size=size,
            ours_s=backend_alone,
            baseline_s=bound,
            note=f"the same messages built and sent by {connections} threads, nothing else: "
            "the floor under the row above",
        ),
    ]


def django_backend_alone(reminders):
    """Seconds for EMAIL_CONNECTIONS threads, each with one connection of Django's SMTP
    backend, to build and send their share of `reminders`."""
    import threading

    from django.core.mail import EmailMultiAlternatives, get_connection

    def send(share):
        connection = get_connection()
        connection.open()
        for to, subject, text, html in share:
            message = EmailMultiAlternatives(subject, text, FROM, [to], connection=connection)
            message.attach_alternative(html, "text/html")
            connection.send_messages([message])
        connection.close()

    connections = settings.EMAIL_CONNECTIONS
    threads = [
        threading.Thread(target=send, args=(reminders[index::connections],))
        for index in range(connections)
    ]
    with Timer() as timer:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return timer.seconds


def overhead_row(sink):
    ours, baseline = [], []
    for _ in range(REPEAT):
        seconds, _ = one_run(sink, RELAY_BOOKINGS)
        ours.append(seconds)
        reminders = rendered_reminders(timezone.now())
        sink.reset()
        with Timer() as raw:
            stdlib_send(reminders, sink.port)
        assert sink.count == len(reminders) == 2 * RELAY_BOOKINGS
        baseline.append(raw.seconds)
    return Row(
        benchmark="send_booking_reminders, local sink",
        size=f"{2 * RELAY_BOOKINGS} emails, no delay",
        ours_s=median(ours),
        baseline_s=median(baseline),
        note="baseline: stdlib email builds the same multipart messages, one smtplib "
        "connection; goal <= 1.5x",
    )


def memory_rows(sink):
    env = {
        "EMAIL_URL": f"smtp://{sink.host}:{sink.port}",
        "DATABASE_URL": os.environ["DATABASE_URL"],
    }
    measured = {}
    for size in MEMORY_SIZES:
        _, queries = one_run(sink, size)
        delete_bench_data()
        create_due_bookings(size, timezone.now())
        sink.reset()
        seconds, peak_mb, _ = run_manage("send_booking_reminders", env=env)
        assert sink.count == 2 * size, sink.count
        measured[size] = (seconds, peak_mb, queries)
    smallest = min(MEMORY_SIZES)
    return [
        Row(
            benchmark="send_booking_reminders, memory",
            size=f"{size} due bookings",
            ours_s=seconds,
            baseline_s=None,
            peak_mem_mb=peak_mb,
            note=f"{queries} SQL queries ({chunks(size)} chunk(s) of {CHUNK_BOOKINGS} bookings); "
            f"peak memory {peak_mb / measured[smallest][1]:.2f}x the "
            f"{smallest}-booking run; goal <= 1.2x",
        )
        for size, (seconds, peak_mb, queries) in measured.items()
    ]


def run():
    with smtp_sink_process() as sink, override_settings(**smtp_settings(sink)):
        try:
            return [*relay_row(sink), overhead_row(sink), *memory_rows(sink)]
        finally:
            delete_bench_data()
