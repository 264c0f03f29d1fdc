"""Demo data that gives every job something to do (`manage.py seed_demo`)."""

from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from bookings.models import Booking, Creator
from cronlogs.logger import write_log
from cronlogs.models import Log
from payouts.models import Payout

DEMO_STAFF_EMAIL = "staff@callastar.test"
DEMO_STAFF_PASSWORD = "demo-staff-password"

CREATORS = [
    # email, name, timezone, currency, schedule, onboarded, blocked
    ("jane@creators.test", "Jane Creator", "Europe/Paris", "EUR", "WEEKLY", True, False),
    ("kenji@creators.test", "Kenji Sato", "Asia/Tokyo", "JPY", "DAILY", True, False),
    ("maya@creators.test", "Maya Brooks", "America/New_York", "USD", "DAILY", True, False),
    ("leo@creators.test", "Léo Martin", "Europe/Paris", "EUR", "MANUAL", True, False),
    ("sam@creators.test", "Sam Blocked", "Europe/London", "GBP", "WEEKLY", True, True),
    ("nora@creators.test", "Nora New", "Europe/Berlin", "EUR", "WEEKLY", False, False),
]
CLIENTS = [
    ("john@fans.test", "John Doe", "Europe/Paris"),
    ("amelia@fans.test", "Amelia Chen", "America/Los_Angeles"),
    ("ravi@fans.test", "Ravi Patel", "Asia/Kolkata"),
    ("lucia@fans.test", "Lucía García", "Europe/Madrid"),
]


def _user(email, name, tz, **extra):
    user, created = get_user_model().objects.get_or_create(
        email=email, defaults={"name": name, "timezone": tz, **extra}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


@transaction.atomic
def seed_demo_data(*, now=None):
    """Create demo users, bookings around `now`, payouts and old and new logs; return counts."""
    now = now or timezone.now()
    staff = _user(DEMO_STAFF_EMAIL, "Demo Staff", "Europe/Paris", is_staff=True, is_superuser=True)
    staff.set_password(DEMO_STAFF_PASSWORD)
    staff.save(update_fields=["password"])

    creators = []
    for index, (email, name, tz, currency, schedule, onboarded, blocked) in enumerate(CREATORS):
        creator, _ = Creator.objects.get_or_create(
            user=_user(email, name, tz),
            defaults={
                "currency": currency,
                "payout_schedule": schedule,
                "stripe_account_id": f"acct_demo{index:04d}" if onboarded else None,
                "is_stripe_onboarded": onboarded,
                "is_payout_blocked": blocked,
                "payout_block_reason": "Chargeback under review" if blocked else "",
                "payout_minimum": Decimal("1000") if currency == "JPY" else Decimal("10.00"),
            },
        )
        creators.append(creator)
    clients = [_user(email, name, tz) for email, name, tz in CLIENTS]

    stamp = int(now.timestamp())
    bookings = []
    plan = [
        # status, starts in, has room
        (Booking.Status.CONFIRMED, timedelta(minutes=12), True),  # reminder due
        (Booking.Status.CONFIRMED, timedelta(minutes=17), True),  # reminder due
        (Booking.Status.CONFIRMED, timedelta(minutes=2), True),  # due, a missed run catches up
        (Booking.Status.CONFIRMED, timedelta(hours=3), True),  # not yet
        (Booking.Status.CONFIRMED, timedelta(days=2), False),
        (Booking.Status.CONFIRMED, -timedelta(minutes=10), True),  # started: never reminded
        (Booking.Status.PENDING, timedelta(minutes=15), True),  # not confirmed
        (Booking.Status.COMPLETED, -timedelta(days=1), True),  # room to delete
        (Booking.Status.COMPLETED, -timedelta(hours=5), True),  # room to delete
        (Booking.Status.COMPLETED, -timedelta(days=3), False),  # already cleaned
        (Booking.Status.CANCELLED, timedelta(days=1), True),  # room to delete
    ]
    for index, (status, starts_in, has_room) in enumerate(plan):
        creator = creators[index % 4]
        room = f"demo-{stamp}-{index}" if has_room else None
        bookings.append(
            Booking(
                client=clients[index % len(clients)],
                creator=creator,
                status=status,
                starts_at=now + starts_in,
                duration_minutes=30,
                total_price=Decimal("5000") if creator.currency == "JPY" else Decimal("49.00"),
                currency=creator.currency,
                daily_room_name=room,
                daily_room_url=f"https://callastar.daily.co/{room}" if room else None,
            )
        )
    Booking.objects.bulk_create(bookings)

    payouts = [
        Payout(creator=creators[0], amount=Decimal("120.00"), status=Payout.Status.APPROVED),
        Payout(creator=creators[2], amount=Decimal("75.50"), status=Payout.Status.APPROVED),
        Payout(creator=creators[4], amount=Decimal("60.00"), status=Payout.Status.APPROVED),
        Payout(creator=creators[3], amount=Decimal("42.00"), status=Payout.Status.REQUESTED),
        Payout(creator=creators[1], amount=Decimal("8000"), status=Payout.Status.PAID),
    ]
    for payout in payouts:
        payout.currency = payout.creator.currency
        if payout.status != Payout.Status.REQUESTED:
            payout.approved_at, payout.approved_by = now - timedelta(hours=2), staff
        if payout.status == Payout.Status.PAID:
            payout.paid_at = now - timedelta(days=1)
    Payout.objects.bulk_create(payouts)

    old_logs = [
        (Log.Level.INFO, timedelta(days=45)),
        (Log.Level.INFO, timedelta(days=5)),
        (Log.Level.WARNING, timedelta(days=75)),
        (Log.Level.ERROR, timedelta(days=120)),
        (Log.Level.ERROR, timedelta(days=30)),
        (Log.Level.CRITICAL, timedelta(days=400)),
    ]
    for level, age in old_logs:
        row = write_log(
            type=Log.Type.EMAIL_SENT if level == Log.Level.INFO else Log.Type.EMAIL_ERROR,
            status=Log.Status.SUCCESS if level == Log.Level.INFO else Log.Status.ERROR,
            level=level,
            message=f"Demo {level.lower()} row from {age.days} days ago",
            context={"demo": True},
        )
        Log.objects.filter(pk=row.pk).update(created_at=now - age)

    return {
        "creators": len(creators),
        "clients": len(clients),
        "bookings": len(bookings),
        "payouts": len(payouts),
        "logs": len(old_logs),
    }
