"""Sending reminder emails over several SMTP connections at once.

A real relay takes tens of milliseconds per message, so one connection caps a run at a few
dozen messages a second. `SenderPool` keeps EMAIL_CONNECTIONS (4) connections, one per
sender thread, and sends each batch it is given over all of them: each thread builds
(renders) and sends the messages it takes from a shared queue over its own connection, so a
connection that fails only fails the message it was sending (the others take the rest),
and rendering overlaps the others' network waits.

The threads never touch the database: the reminder job claims, checks and records in its
own thread, and hands the pool deliveries whose outcome the threads fill in.
"""

import contextlib
import queue
import re
import smtplib
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.mail import get_connection

from bookings.emails import reminder_message


@dataclass
class Delivery:
    """One reminder to send: what it is about, and how it went."""

    reminder: object  # the claimed BookingReminder, with its booking and people loaded
    person: object
    other: object
    role: str
    context: dict  # the EMAIL_SENT / EMAIL_ERROR context
    deadline: float  # time.monotonic() after which it must not be sent under its claim
    sent_at: object = None
    error: object = None
    permanent: bool = False
    attempted: bool = False
    skipped: str = ""  # why it was not needed after all (the call was cancelled or moved)

    def fail(self, error, *, permanent):
        self.attempted = True
        self.error, self.permanent = error, permanent


@dataclass
class _Slot:
    """One sender thread's connection, opened on first use and kept for the run."""

    connection: object = None
    error: object = None  # why the connection cannot be used, if it cannot
    opened: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class SenderPool:
    """EMAIL_CONNECTIONS connections sending batches of deliveries in parallel.

    `clock(now)` maps time.monotonic() to the run's time (the run's `now` plus the time
    elapsed), so sent times and "has the call started" agree with the run's clock.
    """

    def __init__(self, *, connections, run_clock):
        self.slots = [_Slot() for _ in range(max(1, connections))]
        self.run_clock = run_clock
        self._threads, self._failures, self._work = [], [], queue.SimpleQueue()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._join()
        for slot in self.slots:
            if slot.connection is not None:
                # A broken connection has nothing left to release.
                with contextlib.suppress(OSError):
                    slot.connection.close()

    def start(self, deliveries):
        """Start sending `deliveries` over the pool's connections, and return at once;
        `wait()` returns when they are all done.

        The connections take messages from one queue as they get free, so a slow one
        holds nobody up; a connection that cannot be opened, or breaks and cannot be
        reopened, stops taking messages and leaves the rest to the others. What no
        connection could take fails with the connection's error (retried next run).
        """
        self.wait()
        self._work = queue.SimpleQueue()
        for delivery in deliveries:
            self._work.put(delivery)
        self._failures = []
        if len(self.slots) == 1 or len(deliveries) == 1:
            # Nothing to overlap: send in this thread (and on its database connection).
            self._drain(self.slots[0], self._work)
            return
        self._threads = [
            threading.Thread(
                target=self._guarded, args=(slot, self._work, self._failures), name="reminder-smtp"
            )
            for slot in self.slots[: len(deliveries)]
        ]
        for thread in self._threads:
            thread.start()

    def wait(self):
        """Wait for the batch `start` began; raise what a sending thread raised."""
        self._join()
        failures, self._failures = self._failures, []
        if failures:
            raise failures[0]
        # Messages left in the queue: no connection could take them (they fail with its
        # error), or a sender raised (they stay unattempted, and go back to the queue).
        error = self.first_connection_error()
        while error is not None and not self._work.empty():
            self._work.get().fail(error, permanent=False)

    def _join(self):
        threads, self._threads = self._threads, []
        for thread in threads:
            thread.join()

    def first_connection_error(self):
        return next((slot.error for slot in self.slots if slot.error is not None), None)

    def _guarded(self, slot, work, failures):
        try:
            self._drain(slot, work)
        except BaseException as exc:  # Re-raised in the calling thread.
            failures.append(exc)

    def _drain(self, slot, work):
        with slot.lock:
            if not slot.opened:
                slot.connection = get_connection()
                slot.error = _open(slot.connection)
                slot.opened = True
            while slot.error is None:
                try:
                    delivery = work.get_nowait()
                except queue.Empty:
                    return
                self._deliver(slot, delivery)

    def _deliver(self, slot, delivery):
        if time.monotonic() >= delivery.deadline:
            return  # Left unattempted: its claim goes back to the queue.
        now = self.run_clock(time.monotonic())
        if now >= delivery.reminder.starts_at:
            delivery.fail("The call started before its reminder could be sent", permanent=True)
            return
        try:
            message = reminder_message(
                booking=delivery.reminder.booking,
                role=delivery.role,
                person=delivery.person,
                other=delivery.other,
                starts_at=delivery.reminder.starts_at,
                connection=slot.connection,
            )
            delivery.attempted = True
            slot.connection.send_messages([message])
            delivery.sent_at = now
        except smtplib.SMTPRecipientsRefused as exc:
            delivery.fail(exc, permanent=_address_refused_for_good(exc))
        except OSError as exc:  # smtplib.SMTPException is an OSError too
            delivery.fail(exc, permanent=False)
            if _connection_lost(exc):
                with contextlib.suppress(OSError):
                    slot.connection.close()
                slot.error = _open(slot.connection)


# RFC 3463's enhanced status code at the start of a reply ("5.1.1 No such user").
ENHANCED_STATUS = re.compile(rb"^(\d)\.(\d{1,3})\.\d{1,3}\b")
# Without one, these name the mailbox itself.
MAILBOX_CODES = (550, 551, 553)


def _address_refused_for_good(exc):
    """True if the server refused the address itself (5.1.x: no such mailbox, bad
    address). Anything else — 4xx, or 5.7.1 "relay access denied" — blames us or the
    server, not the recipient, so the reminder is retried rather than given up."""

    def blames_address(code, reply):
        enhanced = ENHANCED_STATUS.match(reply)
        if enhanced:
            return enhanced[1] == b"5" and enhanced[2] == b"1"
        return code in MAILBOX_CODES

    replies = exc.recipients.values()
    return bool(replies) and all(blames_address(code, reply) for code, reply in replies)


def _open(connection):
    try:
        connection.open()
    except OSError as exc:
        return exc
    return None


def _connection_lost(exc):
    return isinstance(exc, smtplib.SMTPServerDisconnected) or not isinstance(
        exc, smtplib.SMTPException
    )


def monotonic_clock(now):
    """A run clock: time.monotonic() readings mapped onto the run's own `now`."""
    started = time.monotonic()

    def clock(reading):
        return now + timedelta(seconds=reading - started)

    return clock
