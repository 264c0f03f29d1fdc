"""What a job's service gets from the runner, and how it reports back.

The runner hands every service one `JobRun`: the moment the run started (`now`), whether it
is a dry run, the `stats` the service fills as it goes (so a failure still reports what was
done), the deadline its max runtime sets, and a tally of per-item outcomes. From the tally
the runner decides the run's outcome (SPEC §9): an item that failed for a provider or system
reason counts against the run; an item refused for its own reason does not.

Services import this module, never the runner.
"""

import time
from enum import StrEnum

from django.utils import timezone

# Lists in a run's stats (errors, skipped payouts, rooms) stop growing here; counts stay exact.
MAX_LISTED = 100
# Lines a run keeps for the person at the terminal (`JobRun.detail`).
MAX_DETAILS = 200


class ItemOutcome(StrEnum):
    """What happened to one item of a run (an email, a room, a payout)."""

    # Done: sent, paid, settled, deleted (or already gone, which is as good).
    DONE = "done"
    # Attempted and refused for the item's own reason: a refused address, a balance too
    # low, a declined payout. Final for the item, and no fault of the run.
    REFUSED = "refused"
    # Attempted and failed for a provider or system reason (unreachable, timeout, 5xx,
    # 429 after retries): the item is tried again by a later run.
    FAILED = "failed"
    # Not attempted, for a reason of the item's own (a blocked creator, no onboarding).
    SKIPPED = "skipped"
    # Nothing for this run to do: still in transit, or another worker had it first.
    UNCHANGED = "unchanged"


ATTEMPTED = frozenset({ItemOutcome.DONE, ItemOutcome.REFUSED, ItemOutcome.FAILED})


class MaxRuntimeExceeded(Exception):
    """The run went past its max runtime and stopped taking new items."""


class JobRun:
    """One run of a job, as its service sees it."""

    def __init__(
        self,
        *,
        now=None,
        dry_run=False,
        stats=None,
        max_runtime=None,
        max_runtime_setting="",
        clock=time.monotonic,
    ):
        self.now = now or timezone.now()
        self.dry_run = dry_run
        self.stats = {} if stats is None else stats
        self.max_runtime = max_runtime
        self.max_runtime_setting = max_runtime_setting
        self._clock = clock
        self._deadline = None if max_runtime is None else clock() + max_runtime.total_seconds()
        self.attempted = 0
        self.failed = 0
        self.first_failure = None
        self.details = []
        self.details_left_out = 0

    def time_is_up(self):
        return self._deadline is not None and self._clock() >= self._deadline

    def check_time(self):
        """Call before taking each new item: raises MaxRuntimeExceeded once the run is
        past its max runtime, so it ends failed with what it did so far recorded."""
        if self.time_is_up():
            minutes = self.max_runtime.total_seconds() / 60
            setting = f" ({self.max_runtime_setting})" if self.max_runtime_setting else ""
            raise MaxRuntimeExceeded(
                f"exceeded its max runtime of {minutes:g} min{setting}: stopped taking new "
                f"items after {self.attempted}; the rest is left for the next run"
            )

    def count(self, outcome, error=None):
        """Tally one item's outcome; `error` says why a FAILED item failed."""
        outcome = ItemOutcome(outcome)
        if outcome in ATTEMPTED:
            self.attempted += 1
        if outcome == ItemOutcome.FAILED:
            self.failed += 1
            if self.first_failure is None and error is not None:
                self.first_failure = str(error)

    @property
    def every_attempt_failed(self):
        return self.attempted > 0 and self.failed == self.attempted

    def detail(self, line):
        """A line for the person at the terminal ("sent … to …", "would delete room …")."""
        if len(self.details) < MAX_DETAILS:
            self.details.append(line)
        else:
            self.details_left_out += 1


def append_capped(items, entry, limit=MAX_LISTED):
    """Append `entry` to a list kept in a run's stats, unless it already holds `limit`."""
    if len(items) < limit:
        items.append(entry)
