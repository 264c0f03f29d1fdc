"""seed_demo: demo data that gives every job something to do."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from bookings.models import Booking
from callastar.demo import DEMO_STAFF_EMAIL, DEMO_STAFF_PASSWORD, seed_demo_data
from cronlogs.models import Log
from payouts.models import Payout

pytestmark = pytest.mark.django_db


def test_it_gives_every_job_work():
    now = timezone.now()
    seed_demo_data(now=now)

    # It should leave reminders due, rooms to delete, payouts to pay and logs to expire.
    due = Booking.objects.filter(
        status="CONFIRMED", starts_at__gt=now, starts_at__lte=now + timedelta(minutes=20)
    )
    assert due.count() >= 2
    assert Booking.objects.filter(
        status__in=["COMPLETED", "CANCELLED"], daily_room_name__isnull=False
    ).exists()
    assert Payout.objects.filter(status="APPROVED").count() >= 2
    assert Log.objects.filter(level="INFO", created_at__lt=now - timedelta(days=30)).exists()
    assert Log.objects.filter(level="CRITICAL").exists()


def test_it_can_run_twice_and_signs_the_staff_user_in():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=out)

    staff = get_user_model().objects.get(email=DEMO_STAFF_EMAIL)
    assert staff.is_staff and staff.check_password(DEMO_STAFF_PASSWORD)
    assert get_user_model().objects.filter(email=DEMO_STAFF_EMAIL).count() == 1
    assert "Demo data loaded" in out.getvalue()
