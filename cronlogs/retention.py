"""Log retention: delete old rows by level, in short index-backed batches."""

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction

from cronlogs.models import Log

KEPT_LEVELS = (Log.Level.CRITICAL,)


def retention_policy():
    """Days to keep each level, from settings; CRITICAL is always kept."""
    policy = {
        level: int(days)
        for level, days in settings.LOG_RETENTION_DAYS.items()
        if level not in KEPT_LEVELS
    }
    for level, days in policy.items():
        if level not in Log.Level.values:
            raise ValueError(f"LOG_RETENTION_DAYS names an unknown level {level!r}")
        if days < 1:
            raise ValueError(f"LOG_RETENTION_DAYS[{level!r}] must be at least 1 day, not {days}")
    return policy


def delete_expired_batch(level, cutoff, batch_size):
    """Delete up to `batch_size` rows of `level` created before `cutoff`; return how many."""
    quote = connection.ops.quote_name
    table, pk = quote(Log._meta.db_table), quote(Log._meta.pk.column)
    level_col = quote(Log._meta.get_field("level").column)
    created_col = quote(Log._meta.get_field("created_at").column)
    # The inner SELECT walks the (level, createdAt) index; no row reaches Python.
    sql = (
        f"DELETE FROM {table} WHERE {pk} IN ("
        f"SELECT {pk} FROM {table} WHERE {level_col} = %s AND {created_col} < %s LIMIT %s)"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [level, cutoff, batch_size])
        return cursor.rowcount


def cleanup_logs(*, now, dry_run, stats, batch_size=None):
    """Delete INFO rows older than 30 days, WARNING older than 60 and ERROR older than 90
    (settings.LOG_RETENTION_DAYS); CRITICAL rows are never deleted."""
    batch_size = batch_size or settings.LOG_RETENTION_BATCH_SIZE
    policy = retention_policy()
    stats["retentionPolicy"] = {
        **{level: f"{days} days" for level, days in policy.items()},
        "CRITICAL": "kept",
    }
    stats["itemsProcessed"] = 0
    for level in (Log.Level.INFO, Log.Level.WARNING, Log.Level.ERROR):
        stats[f"{level.lower()}Deleted"] = 0
    for level, days in policy.items():
        key = f"{level.lower()}Deleted"
        cutoff = now - timedelta(days=days)
        if dry_run:
            stats[key] = Log.objects.filter(level=level, created_at__lt=cutoff).count()
            continue
        while True:
            deleted = delete_expired_batch(level, cutoff, batch_size)
            stats[key] += deleted
            stats["itemsProcessed"] += deleted
            if deleted < batch_size:
                break
