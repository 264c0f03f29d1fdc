"""Pacing calls to an outside service below its rate limit, across threads.

Each provider client (`bookings.daily`, `payouts.stripe_client`) keeps a `Pacer` per
limit it must respect and waits on it before each request.
"""

import threading
import time

from django.core.exceptions import ImproperlyConfigured


class Pacer:
    """Spaces calls at least 1/rate seconds apart, start to start, across threads.

    A rate of 0 turns pacing off (tests; the settings refuse it).
    """

    def __init__(self, rate_per_second, *, setting="", clock=time.monotonic, sleep=time.sleep):
        if rate_per_second < 0:
            raise ImproperlyConfigured(f"{setting or 'A rate'} must not be negative.")
        self.interval = 1.0 / rate_per_second if rate_per_second else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next_slot = float("-inf")
        self._lock = threading.Lock()

    def wait(self):
        """Block until this caller's slot comes."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
        if slot > now:
            self._sleep(slot - now)

    def hold_off(self, seconds=None):
        """The provider pushed back (a retry, a 429): leave it `seconds` (one interval by
        default) from now before the next call."""
        with self._lock:
            pause = self.interval if seconds is None else max(seconds, self.interval)
            self._next_slot = max(self._next_slot, self._clock() + pause)
