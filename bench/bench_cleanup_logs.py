"""cleanup_logs on a big Log table against one raw DELETE of the same rows.

Each side starts from the same freshly generated table (70% of rows past retention).
"ours" is the whole `manage.py cleanup_logs` process, start-up included; the baseline is
a single DELETE statement removing exactly the same rows. Peak memory is the command's
resident set size, measured at two table sizes to show it does not grow with the rows.
"""

import os

from django.db import connection

from bench.harness import Row, Timer, run_manage

SIZES = [int(size) for size in os.environ.get("BENCH_CLEANUP_SIZES", "100000,1000000").split(",")]
# Each figure is the median of this many runs, each on a freshly generated table.
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))

# 70% of the rows are past retention: ages spread so each level has rows on both sides.
GENERATE = """
INSERT INTO "Log" (type, status, level, message, context, error, "createdAt")
SELECT 'EMAIL_SENT', 'SUCCESS',
       CASE WHEN n % 10 < 7 THEN (ARRAY['INFO','WARNING','ERROR'])[n % 3 + 1]
            WHEN n % 10 = 9 THEN 'CRITICAL'
            ELSE (ARRAY['INFO','WARNING','ERROR'])[n % 3 + 1] END,
       'Email sent: booking_reminder_client for booking ' || n,
       jsonb_build_object('bookingId', n, 'userId', n % 5000,
                          'emailType', 'booking_reminder_client'),
       NULL,
       now() - CASE
           WHEN n % 10 < 7 THEN  -- expired: past its level's retention
               make_interval(days => (ARRAY[31, 61, 91])[n % 3 + 1] + (n % 200))
           WHEN n % 10 = 9 THEN make_interval(days => 500)  -- CRITICAL: always kept
           ELSE make_interval(days => n % 29, secs => n % 3600)  -- recent
       END
FROM generate_series(1, {size}) AS n
"""

RAW_DELETE = """
DELETE FROM "Log"
WHERE (level = 'INFO' AND "createdAt" < now() - interval '30 days')
   OR (level = 'WARNING' AND "createdAt" < now() - interval '60 days')
   OR (level = 'ERROR' AND "createdAt" < now() - interval '90 days')
"""


def fill(size):
    with connection.cursor() as cursor:
        cursor.execute('TRUNCATE "Log" RESTART IDENTITY')
        cursor.execute(GENERATE.format(size=int(size)))
    with connection.cursor() as cursor:
        cursor.execute('VACUUM ANALYZE "Log"')


def count():
    """The generated rows left; a run's own rows (CRON_STARTED, CRON_RUN) do not count."""
    with connection.cursor() as cursor:
        cursor.execute("""SELECT count(*) FROM "Log" WHERE type = 'EMAIL_SENT'""")
        return cursor.fetchone()[0]


def median(values):
    return sorted(values)[len(values) // 2]


def autovacuum(enabled):
    # Off while measuring: a vacuum of the last run's dead rows would land at random in
    # either side's timing. Each fill ends with its own VACUUM ANALYZE.
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE "Log" SET (autovacuum_enabled = {str(enabled).lower()})')


def run():
    from cronlogs.runner import run_job

    autovacuum(False)
    try:
        return measure(run_job)
    finally:
        autovacuum(True)


def measure(run_job):
    rows = []
    for size in SIZES:
        baseline_times, job_times, command_times, peaks = [], [], [], []
        for _ in range(REPEAT):
            fill(size)
            with Timer() as baseline, connection.cursor() as cursor:
                cursor.execute(RAW_DELETE)
                expected_deleted = cursor.rowcount
            left_by_baseline = count()
            baseline_times.append(baseline.seconds)

            fill(size)
            with Timer() as job:
                result = run_job("cleanup-logs")
            assert result.items_processed == expected_deleted, result.summary()
            assert count() == left_by_baseline, "cleanup-logs did not delete the same rows"
            job_times.append(job.seconds)

            fill(size)
            seconds, peak_mb, _ = run_manage("cleanup_logs")
            assert count() == left_by_baseline, "cleanup_logs did not delete the same rows"
            command_times.append(seconds)
            peaks.append(peak_mb)
        label = f"{size:,} rows, {expected_deleted:,} expired"
        rows.append(
            Row(
                "cleanup-logs job vs one DELETE",
                label,
                median(job_times),
                median(baseline_times),
                note=f"median of {REPEAT}",
            )
        )
        rows.append(
            Row(
                "manage.py cleanup_logs vs one DELETE",
                label,
                median(command_times),
                median(baseline_times),
                max(peaks),
                "whole process, Django start-up included",
            )
        )
    with connection.cursor() as cursor:
        cursor.execute('TRUNCATE "Log" RESTART IDENTITY')
    return rows
