"""A per-job lock that stops two runs of the same job from overlapping.

On PostgreSQL it is a session-level advisory lock, so it holds across every process and
host that shares the database and is released by the server if the process dies. The
SQLite fallback is a `flock` on a file: SQLite is only shared by processes on one host.
"""

import fcntl
import hashlib
import logging
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connections

logger = logging.getLogger(__name__)


def advisory_lock_key(job_name):
    digest = hashlib.sha256(f"callastar-cron:{job_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def job_lock(job_name, connection=None):
    """Yield True if this process now holds the job's lock, False if someone else does."""
    connection = connection or connections["default"]
    if connection.vendor == "postgresql":
        with _advisory_lock(connection, advisory_lock_key(job_name)) as acquired:
            yield acquired
    else:
        with _file_lock(Path(settings.CRON_LOCK_DIR) / f"{job_name}.lock") as acquired:
            yield acquired


@contextmanager
def _advisory_lock(connection, key):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except DatabaseError:
                # The connection is gone, and the server released the lock with it.
                logger.warning("Could not release advisory lock %s", key, exc_info=True)


@contextmanager
def _file_lock(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class LockTimeout(Exception):
    """A named lock stayed taken for longer than the caller would wait."""


@contextmanager
def named_lock(name, *, timeout, poll=0.05, connection=None):
    """Hold the lock called `name` (any process, any host sharing the database), waiting
    up to `timeout` seconds for it; raises LockTimeout if it stays taken.

    For short critical sections shared by several jobs (a creator's balance); a job's own
    run uses `job_lock`, which never waits.
    """
    deadline = time.monotonic() + timeout
    while True:
        with job_lock(name, connection=connection) as acquired:
            if acquired:
                yield
                return
        if time.monotonic() >= deadline:
            raise LockTimeout(f"{name} stayed locked for more than {timeout:g} s")
        time.sleep(poll)
