"""What a run tells beyond its own Log rows: the run counters behind the Prometheus metrics,
check-in pings (`cronlogs.pings`) and Sentry cron check-ins (`cronlogs.sentry`).

The runner makes one `OutsideSignals` per run and calls `started()` once the run holds its
lock and has written CRON_STARTED, and `finished(result)` once it has written its last row.
Dry runs tell nothing; skipped runs are counted and send nothing. None of it changes a
run's outcome: each signal swallows (and reports) its own failures.
"""

import logging
import os
import socket

from django.db import DatabaseError

from cronlogs import pings, sentry
from cronlogs.models import RunCount
from cronlogs.redaction import redact_text

log = logging.getLogger(__name__)


class OutsideSignals:
    def __init__(self, job, run_id, *, dry_run):
        self.job = job
        self.run_id = run_id
        self.dry_run = dry_run

    def started(self):
        if self.dry_run:
            return
        body = f"{self.job.name}: started on {socket.gethostname()} (pid {os.getpid()})"
        pings.ping(self.job, pings.Ping.START, run_id=self.run_id, body=body)
        sentry.check_in(self.job, sentry.CheckInStatus.IN_PROGRESS, check_in_id=self.run_id)

    def finished(self, result, failure=None):
        """`result` is the run's RunResult; `failure` the exception that failed it, if any."""
        if self.dry_run:
            return
        self._count(result.status)
        if result.skip_reason is not None:
            return
        pings.ping(
            self.job,
            pings.Ping.FAIL if result.failed else pings.Ping.SUCCESS,
            run_id=self.run_id,
            body=redact_text(result.summary()),
        )
        if failure is not None:
            sentry.capture_failure(self.job, failure, run_id=self.run_id)
        sentry.check_in(
            self.job,
            sentry.CheckInStatus.ERROR if result.failed else sentry.CheckInStatus.OK,
            check_in_id=self.run_id,
            duration=result.duration_ms / 1000,
        )

    def _count(self, outcome):
        try:
            RunCount.add_one(self.job.name, outcome)
        except DatabaseError:
            log.warning("%s: could not count a %s run", self.job.name, outcome, exc_info=True)
