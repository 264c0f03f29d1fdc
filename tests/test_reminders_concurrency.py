"""Two processes reminding the same bookings at the same moment: one email per recipient."""

import json
from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from bookings.models import Booking, BookingReminder, Creator
from cronlogs.models import Log
from tests.processes import race

BOOKINGS = 200

# Runs in each child: the reminder service called directly, past
# the job lock, as the cron job or as the admin's "send reminder now" would call it.
CHILD = """
import json, os
import django
django.setup()
from django.utils import timezone
from bookings.models import Booking
from bookings.reminders import remind_bookings_now, send_due_reminders
from cronlogs.work import JobRun
from tests.processes import wait_for_start_signal

wait_for_start_signal()
run = JobRun(now=timezone.now())
if os.environ["RACE_MODE"] == "cron":
    send_due_reminders(run)
else:
    ids = list(Booking.objects.filter(status="CONFIRMED").values_list("pk", flat=True))
    remind_bookings_now(run, booking_ids=ids)
print(json.dumps(run.stats))
"""


def create_due_bookings(count):
    User = get_user_model()
    users = User.objects.bulk_create(
        User(email=f"{role}{n}@example.com", name=f"{role} {n}", password="!")
        for n in range(count)
        for role in ("client", "creator")
    )
    clients, creator_users = users[0::2], users[1::2]
    creators = Creator.objects.bulk_create(Creator(user=user) for user in creator_users)
    starts_at = timezone.now() + timedelta(minutes=10)
    Booking.objects.bulk_create(
        Booking(
            client=client,
            creator=creator,
            status=Booking.Status.CONFIRMED,
            starts_at=starts_at,
            total_price="50.00",
        )
        for client, creator in zip(clients, creators, strict=True)
    )
    return {user.email for user in users}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("modes", [("cron", "cron"), ("cron", "admin"), ("cron", "cron", "admin")])
def test_it_sends_exactly_one_email_per_recipient_when_processes_race(
    modes, smtp_server, subprocess_env, tmp_path
):
    addresses = create_due_bookings(BOOKINGS)
    smtp = {**subprocess_env, "EMAIL_URL": f"smtp://{smtp_server.host}:{smtp_server.port}"}

    outcomes = race(CHILD, [{**smtp, "RACE_MODE": mode} for mode in modes], tmp_path)

    assert [returncode for returncode, _, _ in outcomes] == [0] * len(modes), outcomes
    stats = [json.loads(stdout.strip().splitlines()[-1]) for _, stdout, _ in outcomes]

    # It should deliver 400 emails: every recipient exactly once, none missing.
    assert len(smtp_server.messages) == 2 * BOOKINGS
    received = Counter(smtp_server.recipients)
    assert set(received) == addresses
    assert set(received.values()) == {1}
    # ...and both processes' records should agree with what the server received.
    assert sum(run["emailsSent"] for run in stats) == 2 * BOOKINGS
    assert sum(run["emailsFailed"] for run in stats) == 0
    assert Log.objects.filter(type="EMAIL_SENT").count() == 2 * BOOKINGS
    assert not Log.objects.filter(type="EMAIL_ERROR").exists()
    assert set(BookingReminder.objects.values_list("status", flat=True)) == {"SENT"}
    assert BookingReminder.objects.count() == 2 * BOOKINGS
    assert not Booking.objects.filter(reminder_sent=False).exists()
