"""Deleting Daily rooms in batches, and finding out what makes a batch fail.

`DELETE /batch/rooms` deletes up to 1,000 rooms in one request, under Daily's general rate
limit (20 requests/s, 100 per 5 s) rather than the 2/s of `DELETE /rooms/:name`. It is
all-or-nothing: if anything in the request is wrong (a room that does not exist, a bad
name) no room is deleted, and Daily's answer does not say which room it was.
https://docs.daily.co/reference/rest-api/rooms/batch/delete
https://docs.daily.co/reference/rest-api#rate-limits

So each batch is sent once as it is; only when Daily refuses it are its rooms narrowed
down (`BatchDeletion._narrow`), with group testing sized by how many culprits the run has
met so far: groups expected to hold about one culprit are deleted with one request each,
and a group that fails is halved until its culprit is found. A culprit is then checked with
`GET /rooms/:name` (general limit again): a 404 means it is already gone; a room that
exists is deleted alone with `DELETE /rooms/:name`, whose answer is its own. On the happy
path every room is named by exactly one deletion request.

A batch that fails for a provider reason (5xx, timeout, 429 after the retries) is halved
the same way, so that a room Daily chokes on holds back no other, until too many requests
in a row have failed: then Daily is down, and what is left waits for the next run.
"""

import math
import re
from collections import deque
from enum import StrEnum
from typing import NamedTuple

from cronlogs.providers import ProviderError

BATCH_SIZE_MAX = 1000
# Deletion requests failing in a row for a provider reason (5xx, timeout, 429 after the
# retries) before a run takes Daily for down and sends no more: enough to split past a
# few rooms Daily chokes on, few enough not to hammer Daily while it is down.
OUTAGE_FAILURES = 6
# What Daily accepts as a room name (letters, digits, "-" and "_", at most 128 characters):
# https://docs.daily.co/reference/rest-api/rooms/delete-room. Another name would make its
# whole batch fail, so it goes alone, and Daily's answer to it is its own.
BATCHABLE_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")


class DeleteOutcome(StrEnum):
    DELETED = "deleted"
    ALREADY_GONE = "already_gone"


class RoomDeletion(NamedTuple):
    name: str
    outcome: DeleteOutcome | None
    error: ProviderError | None


def is_data_error(error):
    """Daily refused the request for what it named (400, 404, 422 …), not for who we are
    (401, 403) nor because it could not serve us (429, 5xx, no answer, a redirect)."""
    status = error.http_status or 0
    return 400 <= status < 500 and not (error.is_authentication or error.retryable)


class BatchDeletion:
    """One `delete_rooms` call: sends the requests and yields a RoomDeletion per room.

    `client` has `delete_room_batch(names)`, `delete_room(name)` and `room_exists(name)`.
    `before_delete(names)` is called right before each deletion request with the names it
    would carry and returns those still to delete; a name it drops is never deleted nor
    yielded (the caller keeps track of it). Once Daily refuses our credentials, or fails
    OUTAGE_FAILURES deletion requests in a row, nothing more is sent: every room left gets
    that error, for the next run to try again.
    """

    def __init__(self, client, *, batch_size=BATCH_SIZE_MAX, before_delete=None):
        self.client = client
        self.batch_size = batch_size
        self.before_delete = before_delete or list
        self.examined = 0  # rooms settled while narrowing a refused batch …
        self.culprits = 0  # … and how many of them made it fail
        self.failures_in_a_row = 0  # deletion requests failed for a provider reason
        self.stopped = None  # the error after which nothing more is sent

    def run(self, names):
        names = list(dict.fromkeys(names))
        batchable = [name for name in names if BATCHABLE_NAME.fullmatch(name)]
        for start in range(0, len(batchable), self.batch_size):
            yield from self._delete_group(batchable[start : start + self.batch_size])
        for name in names:
            if not BATCHABLE_NAME.fullmatch(name):
                yield from self._delete_alone(name)

    def _delete_group(self, names):
        names, error = self._attempt(names)
        if error is None:
            yield from _deleted(names)
        elif is_data_error(error):
            yield from self._narrow(names)
        else:
            yield from self._give_up_or_split(names, error)

    def _attempt(self, names):
        """One DELETE /batch/rooms for those of `names` still to delete: (names, error)."""
        if self.stopped:
            return names, self.stopped
        names = self.before_delete(names) if names else names
        if not names:
            return names, None
        try:
            self.client.delete_room_batch(names)
        except ProviderError as error:
            self._failed_with(error)
            return names, error
        self.failures_in_a_row = 0
        return names, None

    def _failed_with(self, error):
        if error.is_authentication:
            self.stopped = error
        elif error.retryable:
            self.failures_in_a_row += 1

    def _narrow(self, names):
        """Find and settle the culprits of `names`, a batch Daily refused for what it
        named, deleting the other rooms in groups on the way."""
        queue = deque(names)
        queue_fails = True  # the queue, as one batch, is known to fail
        exist = []  # rooms checked one by one and found to exist, deleted together at the end
        while queue:
            size = self._group_size(len(queue))
            group = [queue.popleft() for _ in range(size)]
            known_to_fail = queue_fails and not queue
            if size == 1:
                # Culprits are common: checking each room costs less than testing groups.
                yield from self._settle_culprit(group[0], None if known_to_fail else exist)
                queue_fails = False
                continue
            if not known_to_fail:
                group, error = self._attempt(group)
                if error is None:  # and the rest of the queue still fails, if it did
                    self.examined += len(group)
                    yield from _deleted(group)
                    continue
                if not is_data_error(error):
                    yield from self._give_up_or_split([*group, *queue, *exist], error)
                    return
            # `group` fails: halve it until one room is left, the culprit. What is put
            # back in the queue on the way has not been tried on its own.
            queue_fails = False
            while len(group) > 1:
                half = len(group) // 2
                left, error = self._attempt(group[:half])
                if error is None:
                    self.examined += len(left)
                    yield from _deleted(left)
                    group = group[half:]
                elif is_data_error(error):
                    queue.extendleft(reversed(group[half:]))
                    group = left
                else:
                    yield from self._give_up_or_split([*group, *queue, *exist], error)
                    return
            yield from self._settle_culprit(group[0])
        if exist:
            exist, error = self._attempt(exist)
            if error is None:
                yield from _deleted(exist)
            else:
                # They exist, yet fail together: each gets Daily's own word.
                for name in exist:
                    yield from self._delete_alone(name)

    def _group_size(self, queued):
        """The largest power of two expected to hold at most one culprit, going by the
        culprits met so far; the whole queue while none has been met."""
        if not self.examined:
            return queued
        rate = (self.culprits + 1) / (self.examined + 2)
        return min(queued, 2 ** math.floor(math.log2(1 / rate)))

    def _settle_culprit(self, name, exist=None):
        """A room on its own, suspected of failing its batch: gone, or deleted alone.

        With `exist`, a room found to exist is only suspected: it joins that list.
        """
        self.examined += 1
        if self.stopped:
            yield RoomDeletion(name, None, self.stopped)
            return
        try:
            exists = self.client.room_exists(name)
        except ProviderError as error:
            if error.is_authentication:
                self.stopped = error
            if error.is_authentication or error.retryable:
                yield RoomDeletion(name, None, error)
                return
            exists = None  # Daily would not say: let the room's own DELETE answer.
        if exists is False:
            self.culprits += 1
            yield RoomDeletion(name, DeleteOutcome.ALREADY_GONE, None)
        elif exists and exist is not None:
            exist.append(name)
        else:
            self.culprits += 1
            yield from self._delete_alone(name)

    def _delete_alone(self, name):
        if self.stopped:
            yield RoomDeletion(name, None, self.stopped)
            return
        if not self.before_delete([name]):
            return
        try:
            outcome = self.client.delete_room(name)
        except ProviderError as error:
            self._failed_with(error)
            yield RoomDeletion(name, None, error)
            return
        self.failures_in_a_row = 0
        yield RoomDeletion(name, outcome, None)

    def _split_outage(self, names, error):
        """`names` failed for a provider reason (5xx, timeout, 429 after the retries).

        Halved and tried again, half by half, so that a room Daily chokes on holds back no
        other: the failing halves are split in turn, down to rooms deleted alone. Should
        OUTAGE_FAILURES deletions fail in a row, Daily is down: every room left gets the
        error and is tried again by the next run.
        """
        if not self.stopped and self.failures_in_a_row >= OUTAGE_FAILURES:
            self.stopped = error
        if self.stopped:
            yield from _failed(names, self.stopped)
            return
        if len(names) == 1:
            yield from self._delete_alone(names[0])
            return
        half = len(names) // 2
        for part in (names[:half], names[half:]):
            yield from self._delete_group(part)

    def _give_up_or_split(self, names, error):
        if error.retryable:
            yield from self._split_outage(names, error)
        else:
            yield from _failed(names, error)


def _deleted(names):
    for name in names:
        yield RoomDeletion(name, DeleteOutcome.DELETED, None)


def _failed(names, error):
    for name in names:
        yield RoomDeletion(name, None, error)
