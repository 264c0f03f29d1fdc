"""Log retention: delete old rows by level, in short primary-key-range batches.

The table is walked in ranges of ids (one short transaction each, on the primary key
index, in the table's physical order), deleting the rows of each range that are past
their level's retention. A walk costs about what one big DELETE does, without holding
a long transaction or loading a single row into Python.
"""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Count, Q

from cronlogs.models import Log

KEPT_LEVELS = (Log.Level.CRITICAL,)
# Rows of these types are a record, not a log: kept whatever their level.
KEPT_TYPES = (Log.Type.PAYOUT_AUDIT,)
DELETABLE_LEVELS = (Log.Level.INFO, Log.Level.WARNING, Log.Level.ERROR)


def retention_policy():
    """Days to keep each level, from settings; CRITICAL is always kept."""
    policy = {
        level: int(days)
        for level, days in settings.LOG_RETENTION_DAYS.items()
        if level not in KEPT_LEVELS
    }
    for level, days in policy.items():
        if level not in DELETABLE_LEVELS:
            raise ValueError(f"LOG_RETENTION_DAYS names an unknown level {level!r}")
        if days < 1:
            raise ValueError(f"LOG_RETENTION_DAYS[{level!r}] must be at least 1 day, not {days}")
    return policy


def _columns():
    quote = connection.ops.quote_name
    return (
        quote(Log._meta.db_table),
        quote(Log._meta.pk.column),
        quote(Log._meta.get_field("level").column),
        quote(Log._meta.get_field("created_at").column),
        quote(Log._meta.get_field("type").column),
    )


def next_id(at_least):
    """The smallest id >= `at_least` still in the table, or None (skips gaps in one lookup)."""
    table, pk, *_ = _columns()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MIN({pk}) FROM {table} WHERE {pk} >= %s", [at_least])
        return cursor.fetchone()[0]


def last_id():
    table, pk, *_ = _columns()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX({pk}) FROM {table}")
        return cursor.fetchone()[0]


def delete_expired_range(start, stop, cutoffs):
    """Delete the rows with start <= id < stop that are past their level's cut-off."""
    table, pk, level_col, created_col, type_col = _columns()
    expired = " OR ".join(f"({level_col} = %s AND {created_col} < %s)" for _ in cutoffs)
    kept = ", ".join(["%s"] * len(KEPT_TYPES))
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Not waiting for each batch's WAL flush: a crash can only bring back rows
            # that the next run deletes again. Without it, fsyncs dominate small batches.
            cursor.execute("SET LOCAL synchronous_commit = off")
        # The cut-offs go in as the backend stores datetimes (SQLite compares text), so a
        # row exactly at its cut-off is kept on every engine.
        adapt = connection.ops.adapt_datetimefield_value
        cursor.execute(
            f"DELETE FROM {table} WHERE {pk} >= %s AND {pk} < %s AND ({expired}) "
            f"AND {type_col} NOT IN ({kept})",
            [
                start,
                stop,
                *(value for level, cut in cutoffs.items() for value in (level, adapt(cut))),
                *KEPT_TYPES,
            ],
        )
        return cursor.rowcount


def count_expired(cutoffs):
    """Rows past retention per level, counted on the (level, createdAt) index, less the
    kept types' rows: one query on the (type, createdAt) index, which filtering the level
    counts by type would not use (they would then read every expired row)."""
    if not cutoffs:
        return {}
    kept = Log.objects.filter(type__in=KEPT_TYPES, created_at__lt=max(cutoffs.values()))
    kept = kept.aggregate(
        **{
            level: Count("pk", filter=Q(level=level, created_at__lt=cutoff))
            for level, cutoff in cutoffs.items()
        }
    )
    return {
        level: Log.objects.filter(level=level, created_at__lt=cutoff).count() - kept[level]
        for level, cutoff in cutoffs.items()
    }


def cleanup_logs(run, *, batch_size=None):
    """Delete INFO rows older than 30 days, WARNING older than 60 and ERROR older than 90
    (settings.LOG_RETENTION_DAYS); CRITICAL rows and the payout audit trail
    (PAYOUT_AUDIT) are never deleted."""
    stats = run.stats
    batch_size = batch_size or settings.LOG_RETENTION_BATCH_SIZE
    if batch_size < 1:
        raise ImproperlyConfigured(f"LOG_RETENTION_BATCH_SIZE must be at least 1, not {batch_size}")
    policy = retention_policy()
    cutoffs = {level: run.now - timedelta(days=days) for level, days in policy.items()}
    stats["retentionPolicy"] = {
        **{level: f"{days} days" for level, days in policy.items()},
        "CRITICAL": "kept",
    }
    stats["itemsProcessed"] = 0
    for level in DELETABLE_LEVELS:
        stats[f"{level.lower()}Deleted"] = 0
    # Counted up front on the index: counting in the DELETE (RETURNING) would cost more
    # than the deletion itself. The job's lock keeps other cleanups from changing them.
    for level, count in count_expired(cutoffs).items():
        stats[f"{level.lower()}Deleted"] = count
    if run.dry_run:
        stats["itemsProcessed"] = sum(stats[f"{level.lower()}Deleted"] for level in cutoffs)
        return
    # Rows written after the walk starts are newer than every cut-off: stop at today's last id.
    end, start = last_id(), next_id(0)
    while start is not None and start <= end:
        run.check_time()
        stop = start + batch_size
        stats["itemsProcessed"] += delete_expired_range(start, stop, cutoffs)
        start = next_id(stop)
