"""cleanup-daily-rooms on a backlog of 500 rooms, against a local Daily that keeps its limits.

Daily is the fake of tests/daily_fake.py served over HTTP on 127.0.0.1: it answers each
request after 20 ms, implements `DELETE /batch/rooms` as Daily documents it (all or
nothing: one room it does not have fails the whole batch) and enforces Daily's documented
rate limits (20 requests/s and 100 per 5 s for most endpoints, 2/s and 50 per 30 s for
`DELETE /rooms/:name`), answering 429 past them. The job runs with its default settings.

- All 500 rooms exist: the goal is at most 3 requests and 2 s for the whole run.
- 50 of them are already gone, spread at random: each refused batch is narrowed down.
  The goal is 30 s and no 429; the baseline is the least time Daily's limits allow for the
  requests the run made (requests / 20 per second).
- All 500 are gone (rooms that expired on Daily): the same, once culprits are the rule.
- Computed, not run: one `DELETE /rooms/:name` per room, as before batches, at Daily's
  own ceiling for that endpoint.
"""

import random
from decimal import Decimal

from django.test import override_settings
from django.utils import timezone

from bench.harness import Row, Timer
from tests.daily_fake import DELETE_ROOM_LIMITS, GENERAL_LIMITS, FakeDaily, served_daily

ROOMS = 500
ANSWER_DELAY = 0.020
ROOM_PREFIX = "bench-room-"
API_KEY = "bench-daily-key-0123456789"
GENERAL_PER_SECOND = GENERAL_LIMITS[0][0] / GENERAL_LIMITS[0][1]


def make_backlog(now):
    from bookings.models import Booking, Creator, User

    client = User.objects.create_user(email="bench-daily-client@example.com", name="Bench")
    creator = Creator.objects.create(
        user=User.objects.create_user(email="bench-daily-creator@example.com", name="Bench C")
    )
    names = [f"{ROOM_PREFIX}{n:04d}" for n in range(ROOMS)]
    Booking.objects.bulk_create(
        Booking(
            client=client,
            creator=creator,
            status=Booking.Status.COMPLETED if n % 4 else Booking.Status.CANCELLED,
            starts_at=now - timezone.timedelta(days=1),
            total_price=Decimal("50.00"),
            daily_room_name=name,
            daily_room_url=f"https://bench.daily.co/{name}",
        )
        for n, name in enumerate(names)
    )
    return client, creator, names


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


def drain(gone):
    """Run the job on a fresh backlog, `gone` of whose rooms Daily no longer has."""
    from cronlogs.runner import run_job

    client, creator, names = make_backlog(timezone.now())
    missing = set(random.Random(12).sample(names, gone))
    fake = FakeDaily(API_KEY, rate_limits=True, answer_delay=ANSWER_DELAY)
    fake.add_rooms(*(name for name in names if name not in missing))
    result = None
    try:
        with (
            served_daily(fake) as (fake, url),
            override_settings(DAILY_API_KEY=API_KEY, DAILY_API_URL=url),
            Timer() as timer,
        ):
            result = run_job("cleanup-daily-rooms", trigger="cli")
    finally:
        remove_backlog(client, creator, [result.log_id] if result else [])
    assert not result.failed, result.error
    stats = result.stats
    assert (stats["roomsDeleted"], stats["roomsAlreadyDeleted"]) == (ROOMS - gone, gone), stats
    assert fake.rooms == set(), f"{len(fake.rooms)} rooms left on Daily"
    return timer.seconds, fake


def requests_note(fake):
    batches = len(fake.calls("DELETE", "/v1/batch/rooms"))
    singles = len([call for call in fake.calls("DELETE") if call[1].startswith("/v1/rooms/")])
    checks = len(fake.calls("GET"))
    return batches, checks, singles


def run():
    rows = []

    seconds, fake = drain(0)
    requests = len(fake.requests)
    assert requests <= 3, f"{requests} requests for {ROOMS} rooms that all exist"
    assert fake.throttled == 0, f"{fake.throttled} requests were throttled"
    assert seconds <= 2.0, f"{seconds:.2f}s is over the 2 s goal"
    rows.append(
        Row(
            "cleanup_daily_rooms, all rooms exist",
            f"{ROOMS} rooms, {ANSWER_DELAY * 1000:g} ms/answer",
            seconds,
            None,
            None,
            f"{requests} request(s), {fake.throttled} x 429; goal <= 3 requests, <= 2 s",
        )
    )

    for gone in (50, ROOMS):
        seconds, fake = drain(gone)
        batches, checks, singles = requests_note(fake)
        bound = max((batches + checks) / GENERAL_PER_SECOND, singles / 2)
        assert fake.throttled == 0, f"{fake.throttled} requests were throttled"
        if gone == 50:
            assert seconds <= 30, f"{seconds:.1f}s is over the 30 s goal"
        rows.append(
            Row(
                f"cleanup_daily_rooms, {gone} already gone",
                f"{ROOMS} rooms, Daily's limits",
                seconds,
                bound,
                None,
                f"{batches} batches + {checks} GETs + {singles} single DELETEs, "
                f"{fake.throttled} x 429" + ("; goal <= 30 s" if gone == 50 else ""),
            )
        )

    per_window, window = DELETE_ROOM_LIMITS[1]
    rows.append(
        Row(
            "one DELETE /rooms/:name per room (computed)",
            f"{ROOMS} rooms",
            ROOMS / (per_window / window),
            None,
            None,
            f"before batches: Daily's {per_window} per {window:g} s for that endpoint",
        )
    )
    return rows
