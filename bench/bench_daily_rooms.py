"""cleanup-daily-rooms draining a backlog of 500 rooms against a local Daily stand-in.

The stand-in (`RateLimitedDaily` in tests/daily_fake.py) is a threaded HTTP server on
127.0.0.1 that answers each DELETE after 20 ms and, like Daily, rate-limits: more than
LIMIT accepted requests in any sliding second earn a 429 with `Retry-After: 1`. With
DAILY_DELETE_RATE_PER_SECOND=40 the job must send exactly one request per room, provoke
no 429 and finish within 1.2x of the bound the rate sets (500 / 40 = 12.5 s): that bound
is the baseline. A second row runs the same backlog unpaced to show what the pacing
avoids, and that the retries still recover. The last row is computed, not run: the
default rate against Daily's real limit.
"""

from decimal import Decimal

from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from bench.harness import Row, Timer
from tests.daily_fake import RateLimitedDaily

ROOMS = 500
RATE = 40.0
ANSWER_DELAY = 0.020
# The stand-in's limit per sliding second. Our 40/s sits under it as the default 1.5/s
# sits under Daily's 50 per 30 s (1.67/s) for DELETE /rooms/:name.
LIMIT = 45
ROOM_PREFIX = "bench-room-"
DAILY_WINDOW_REQUESTS, DAILY_WINDOW_SECONDS = 50, 30


def make_backlog():
    from bookings.models import Booking, Creator, User

    client = User.objects.create_user(email="bench-daily-client@example.com", name="Bench")
    creator = Creator.objects.create(
        user=User.objects.create_user(email="bench-daily-creator@example.com", name="Bench C")
    )
    Booking.objects.bulk_create(
        Booking(
            client=client,
            creator=creator,
            status=Booking.Status.COMPLETED if n % 4 else Booking.Status.CANCELLED,
            starts_at=timezone.now(),
            total_price=Decimal("50.00"),
            daily_room_name=f"{ROOM_PREFIX}{n:04d}",
            daily_room_url=f"https://bench.daily.co/{ROOM_PREFIX}{n:04d}",
        )
        for n in range(ROOMS)
    )
    return client, creator


def remove_backlog(client, creator, log_ids):
    from bookings.models import Booking
    from cronlogs.models import Log

    Booking.objects.filter(client=client).delete()
    creator.delete()
    creator.user.delete()
    client.delete()
    Log.objects.filter(
        type__startswith="DAILY_ROOM", context__roomId__startswith=ROOM_PREFIX
    ).delete()
    Log.objects.filter(pk__in=log_ids).delete()


def drain(rate):
    """Run the job on a fresh backlog against a fresh stand-in; return what happened."""
    from cronlogs.runner import run_job

    client, creator = make_backlog()
    try:
        with (
            RateLimitedDaily(limit=LIMIT, answer_delay=ANSWER_DELAY) as stand_in,
            override_settings(
                DAILY_API_KEY="bench-daily-key",
                DAILY_API_URL=stand_in.url,
                DAILY_DELETE_RATE_PER_SECOND=rate,
                DAILY_MAX_RETRIES=5,
            ),
            Timer() as timer,
        ):
            result = run_job("cleanup-daily-rooms", trigger="cli")
    finally:
        remove_backlog(client, creator, [result.log_id] if "result" in locals() else [])
    assert not result.failed, result.error
    assert result.stats["roomsDeleted"] == ROOMS, result.stats
    return timer.seconds, stand_in


def run():
    rows = []
    bound = ROOMS / RATE

    seconds, stand_in = drain(RATE)
    one_each = len(stand_in.paths) == ROOMS and set(stand_in.paths.values()) == {1}
    assert one_each, "expected exactly one DELETE per room"
    assert stand_in.throttled == 0, f"{stand_in.throttled} requests were throttled"
    assert seconds <= 1.2 * bound, f"{seconds:.2f}s is over 1.2x the {bound:.1f}s bound"
    rows.append(
        Row(
            f"cleanup_daily_rooms @{RATE:g}/s vs rate bound",
            f"{ROOMS} rooms, {ANSWER_DELAY * 1000:g} ms/answer",
            seconds,
            bound,
            None,
            f"{sum(stand_in.paths.values())} DELETEs, 1 per room, {stand_in.throttled} x 429",
        )
    )

    seconds, stand_in = drain(0)
    rows.append(
        Row(
            "same backlog unpaced (rate 0) vs rate bound",
            f"{ROOMS} rooms, limit {LIMIT}/s",
            seconds,
            bound,
            None,
            f"{stand_in.throttled} x 429 recovered by Retry-After; all {ROOMS} deleted",
        )
    )

    default = settings.DAILY_DELETE_RATE_PER_SECOND
    daily_rate = DAILY_WINDOW_REQUESTS / DAILY_WINDOW_SECONDS
    rows.append(
        Row(
            f"default rate {default:g}/s (computed, not run)",
            f"{ROOMS} rooms",
            ROOMS / default,
            ROOMS / daily_rate,
            None,
            f"baseline = Daily's ceiling {DAILY_WINDOW_REQUESTS}/{DAILY_WINDOW_SECONDS}s; "
            f"{default * DAILY_WINDOW_SECONDS:g} per 30 s window",
        )
    )
    return rows
