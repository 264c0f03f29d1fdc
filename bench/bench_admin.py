"""Admin log pages at 1,000,000 Log rows against the same pages at 10,000.

Each row of the table is one page (a changelist, a filter, a search, the Jobs page): the
baseline is its time with 10,000 rows, "ours" its time with 1,000,000 rows, both the
median of several full requests through Django's test client (URL routing, permissions,
queries and template rendering). A page whose cost followed the table size would show a
ratio near 100x; the goal is under 2x.

Searching the message text is the one page that may read the whole table: `ILIKE '%..%'`
has no index to use, so a word that matches nothing is looked for in every row (the last
line of the table shows that worst case). Booking ids, filters and paging never do.
"""

import os
from datetime import timedelta
from urllib.parse import quote

from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from bench.harness import Row, Timer, test_environment

SMALL, BIG = 10_000, 1_000_000
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))

# A plausible mix: mostly email and room rows, a steady trickle of runs and errors; a
# booking has two emails; one row every 2 seconds, newest first.
GENERATE = """
INSERT INTO "Log" (type, status, level, message, context, error, "createdAt")
SELECT kind.type, kind.status, kind.level,
       kind.type || ' for booking ' || (n / 2) || ' (' || job || ')',
       jsonb_build_object('cronType', job, 'bookingId', n / 2, 'itemsProcessed', n % 50,
                          'duration', n % 5000, 'durationSeconds', (n % 5000) / 1000.0,
                          'trigger', 'cron', 'emailType', 'booking_reminder_client',
                          'recipientEmail', 'user' || (n % 5000) || '@example.com',
                          'roomId', 'room-' || n),
       CASE WHEN kind.status = 'ERROR' THEN 'Traceback ...' END,
       now() - make_interval(secs => n * 2)
FROM generate_series({start}, {stop}) AS n
CROSS JOIN LATERAL (SELECT (ARRAY['cleanup-logs', 'process-payouts',
    'process-automatic-payouts', 'cleanup-daily-rooms', 'send-booking-reminders'])[n % 5 + 1]
    AS job) AS j
CROSS JOIN LATERAL (
    SELECT * FROM (VALUES
        (0, 'EMAIL_SENT', 'SUCCESS', 'INFO'), (1, 'EMAIL_ERROR', 'ERROR', 'ERROR'),
        (2, 'DAILY_ROOM_DELETED', 'SUCCESS', 'INFO'), (3, 'DAILY_ROOM_ERROR', 'ERROR', 'ERROR'),
        (4, 'CRON_RUN', 'SUCCESS', 'INFO'), (5, 'CRON_ERROR', 'ERROR', 'ERROR'),
        (6, 'CRON_SKIPPED', 'SUCCESS', 'WARNING'), (7, 'PAYOUT_SUCCESS', 'SUCCESS', 'INFO')
    ) AS kinds(k, type, status, level)
    WHERE k = CASE WHEN n % 100 < 55 THEN 0 WHEN n % 100 < 60 THEN 1 WHEN n % 100 < 80 THEN 2
                   WHEN n % 100 < 82 THEN 3 WHEN n % 100 < 93 THEN 4 WHEN n % 100 < 95 THEN 5
                   WHEN n % 100 < 97 THEN 6 ELSE 7 END
) AS kind
"""


def pages():
    week_ago = (timezone.now() - timedelta(days=7)).replace(microsecond=0).isoformat()
    return [
        ("all logs", "/admin/cronlogs/log/"),
        ("all logs, page 100", "/admin/cronlogs/log/?p=100"),
        ("cron runs", "/admin/cronlogs/cronrun/"),
        ("email logs", "/admin/cronlogs/emaillog/"),
        ("Daily room logs", "/admin/cronlogs/dailyroomlog/"),
        ("filter: job", "/admin/cronlogs/cronrun/?job=send-booking-reminders"),
        ("filter: type", "/admin/cronlogs/log/?type=EMAIL_ERROR"),
        ("filter: status", "/admin/cronlogs/log/?status__exact=ERROR"),
        ("filter: level", "/admin/cronlogs/log/?level__exact=WARNING"),
        ("filter: date", f"/admin/cronlogs/log/?created_at__gte={quote(week_ago)}"),
        ("search: booking id", "/admin/cronlogs/emaillog/?q=2500"),
        ("search: message", "/admin/cronlogs/log/?q=process-payouts"),
        # No row matches: nothing stops the scan early (see the module docstring).
        ("search: message, no match", "/admin/cronlogs/log/?q=no-such-words"),
        ("Jobs page", "/admin/cronlogs/cronjob/"),
    ]


def insert(start, stop):
    with connection.cursor() as cursor:
        cursor.execute(GENERATE.format(start=int(start), stop=int(stop)))
        cursor.execute('VACUUM ANALYZE "Log"')


def at_both_sizes(measure):
    """(what `measure()` says at SMALL Log rows, what it says at BIG), the table filled
    anew for the first."""
    with connection.cursor() as cursor:
        cursor.execute('TRUNCATE "Log" RESTART IDENTITY')
    insert(1, SMALL)
    small = measure()
    insert(SMALL + 1, BIG)
    return small, measure()


def time_pages(client):
    timings = {}
    for name, url in pages():
        response = client.get(url)  # warm: templates, query plans, caches
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        runs = []
        for _ in range(REPEAT):
            with Timer() as timer:
                client.get(url)
            runs.append(timer.seconds)
        timings[name] = sorted(runs)[len(runs) // 2]
    return timings


def run():
    from django.contrib.auth import get_user_model

    test_environment()
    user, _ = get_user_model().objects.get_or_create(
        email="bench-admin@callastar.test", defaults={"is_staff": True, "is_superuser": True}
    )
    plain_pages = override_settings(
        SECURE_SSL_REDIRECT=False,
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    )
    with plain_pages:
        client = Client()
        client.force_login(user)
        small, big = at_both_sizes(lambda: time_pages(client))
    user.delete()
    return [
        Row(
            f"admin: {name}",
            f"{BIG:,} vs {SMALL:,} rows",
            big[name],
            small[name],
            note="median of full requests",
        )
        for name, _ in pages()
    ]
