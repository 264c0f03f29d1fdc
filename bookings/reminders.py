"""send-booking-reminders: email the client and the creator shortly before their call.

Each (booking, recipient) pair has one `BookingReminder` row. A run claims rows with one
conditional UPDATE (PENDING -> SENDING) that only one worker can win, sends over one SMTP
connection, then records the outcome: SENT, FAILED (given up: the address is missing,
invalid or refused with a 5xx) or back to PENDING (a transient failure, retried by a later
run while the call has not started). No database transaction is open while sending.
"""

import contextlib
import smtplib
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import get_connection
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q

from bookings.emails import display_name, reminder_message
from bookings.models import Booking, BookingReminder
from cronlogs import logger
from cronlogs.logger import iso_utc
from cronlogs.models import Log
from cronlogs.work import ItemOutcome

Recipient, Status = BookingReminder.Recipient, BookingReminder.Status

EMAIL_TYPES = {
    Recipient.CLIENT: "booking_reminder_client",
    Recipient.CREATOR: "booking_reminder_creator",
}
DONE_STATUSES = (Status.SENT, Status.FAILED)
# A claim this old is presumed left behind by a crashed run and may be claimed again.
STALE_CLAIM_AFTER = timedelta(minutes=5)
# A run stops sending under its claim long before another run may take it over, so a
# slow run and a crash-recovering run never send the same reminder.
SEND_DEADLINE = STALE_CLAIM_AFTER / 2
# Rows per INSERT/UPDATE statement: large enough that a run's query count stays constant.
BULK_BATCH_SIZE = 5000


class ReminderDeliveryError(Exception):
    """The SMTP server could not be reached; the reminders stay due for the next run."""


def due_window(*, now):
    """Calls starting after `now` and within lead + cadence minutes (15 + 5 by default)."""
    minutes = settings.REMINDER_LEAD_MINUTES + settings.REMINDER_CADENCE_MINUTES
    return now, now + timedelta(minutes=minutes)


def due_bookings_filter(*, now):
    min_time, max_time = due_window(now=now)
    return Q(
        status=Booking.Status.CONFIRMED,
        reminder_sent=False,
        starts_at__gt=min_time,
        starts_at__lte=max_time,
    )


def send_due_reminders(run):
    """Remind both people of every CONFIRMED booking whose reminder is not done and that
    starts within the next 20 minutes without having started, so a missed run catches up."""
    now, stats = run.now, run.stats
    min_time, max_time = due_window(now=now)
    stats.update(
        totalBookings=0,
        emailsSent=0,
        emailsFailed=0,
        alreadySent=0,
        emailsDeferred=0,
        timeWindow={"minTime": iso_utc(min_time), "maxTime": iso_utc(max_time)},
        itemsProcessed=0,
    )
    scope = due_bookings_filter(now=now)
    booking_ids = list(Booking.objects.filter(scope).order_by("pk").values_list("pk", flat=True))
    stats["totalBookings"] = len(booking_ids)
    if run.dry_run:
        plan_reminders(booking_ids, run=run)
        return
    smtp_error = _remind(booking_ids, scope=scope, run=run)
    if smtp_error is not None and not stats["emailsSent"]:
        raise ReminderDeliveryError(
            f"SMTP server unavailable ({logger.error_message(smtp_error)}); "
            f"{stats['emailsFailed']} reminder(s) will be retried by the next run"
        ) from smtp_error


def remind_bookings_now(run, *, booking_ids):
    """Send the reminders of the given bookings now (the admin's "send reminder now").

    Ignores how far away the call is, but keeps the other rules: CONFIRMED bookings only,
    never after the call has started, never twice to the same person.
    """
    now, stats = run.now, run.stats
    pks = sorted(set(booking_ids))
    stats.update(
        totalBookings=len(pks),
        skipped=0,
        emailsSent=0,
        emailsFailed=0,
        alreadySent=0,
        emailsDeferred=0,
        itemsProcessed=0,
    )
    eligible = list(
        Booking.objects.filter(
            pk__in=pks, status=Booking.Status.CONFIRMED, starts_at__gt=now
        ).values_list("pk", "reminder_sent")
    )
    open_ids = [pk for pk, reminder_sent in eligible if not reminder_sent]
    stats["skipped"] = len(pks) - len(eligible)
    stats["alreadySent"] = 2 * (len(eligible) - len(open_ids))
    scope = Q(pk__in=open_ids, status=Booking.Status.CONFIRMED, starts_at__gt=now)
    if run.dry_run:
        plan_reminders(open_ids, run=run)
        return
    smtp_error = _remind(open_ids, scope=scope, run=run)
    if smtp_error is not None:
        stats["error"] = f"SMTP server unavailable: {logger.error_message(smtp_error)}"


def plan_reminders(booking_ids, *, run):
    """What a real run would do with the reminders of `booking_ids`, in `run.stats`:
    `emailsToSend` (= itemsProcessed) and `emailsToRefuse`, with one detail line each."""
    stats = run.stats
    states = {
        (booking_id, recipient): status
        for booking_id, recipient, status in BookingReminder.objects.filter(
            booking_id__in=booking_ids
        ).values_list("booking_id", "recipient", "status")
    }
    stats.update(emailsToSend=0, emailsToRefuse=0)
    bookings = Booking.objects.filter(pk__in=booking_ids).select_related("client", "creator__user")
    for booking in bookings.order_by("starts_at", "pk"):
        for recipient in (Recipient.CLIENT, Recipient.CREATOR):
            if states.get((booking.pk, recipient), Status.PENDING) in DONE_STATUSES:
                stats["alreadySent"] += 1
                continue
            person, _ = _people(booking, recipient)
            problem = recipient_problem(person, recipient.lower())
            email_type = EMAIL_TYPES[recipient]
            if problem:
                stats["emailsToRefuse"] += 1
                run.detail(f"would not send {email_type} (booking {booking.pk}): {problem}")
            else:
                stats["emailsToSend"] += 1
                run.detail(f"would send {email_type} to {person.email} (booking {booking.pk})")
    stats["itemsProcessed"] = stats["emailsToSend"]


def _remind(booking_ids, *, scope, run):
    """Claim, send and record the open reminders of `booking_ids` (bookings matching
    `scope`). Returns the connection error if the SMTP server could not be reached."""
    if not booking_ids:
        return None
    now, stats = run.now, run.stats
    _create_reminder_rows(booking_ids)
    token = uuid.uuid4()
    claimed = claim_reminders(scope, now=now, token=token)
    stats["alreadySent"] += 2 * len(booking_ids) - len(claimed)
    deliveries = []
    try:
        return _send(claimed, deliveries, run=run)
    finally:
        # Recorded even if the run dies half way, so what was sent is never sent again.
        _record(deliveries, token=token)
        stats["emailsDeferred"] += len(claimed) - len(deliveries)
        _mark_bookings_done(scope)


def _create_reminder_rows(booking_ids):
    rows = [
        BookingReminder(booking_id=booking_id, recipient=recipient)
        for booking_id in booking_ids
        for recipient in (Recipient.CLIENT, Recipient.CREATOR)
    ]
    # Sorted rows, so two runs inserting at once lock index entries in the same order.
    BookingReminder.objects.bulk_create(rows, ignore_conflicts=True, batch_size=BULK_BATCH_SIZE)


def claim_reminders(scope, *, now, token):
    """Claim the open reminders of the bookings matching `scope` for the run `token`:
    PENDING ones, and SENDING ones whose claim went stale. Returns the claimed rows."""
    claimable = (
        BookingReminder.objects.filter(booking__in=Booking.objects.filter(scope))
        .filter(
            Q(status=Status.PENDING)
            | Q(status=Status.SENDING, claimed_at__lt=now - STALE_CLAIM_AFTER)
        )
        # Rows another run is claiming this instant are left to it, not waited for.
        .select_for_update(skip_locked=True, of=("self",))
        .values("pk")
    )
    with transaction.atomic():
        BookingReminder.objects.filter(pk__in=claimable).update(
            status=Status.SENDING, claim_token=token, claimed_at=now
        )
    return list(
        BookingReminder.objects.filter(claim_token=token, status=Status.SENDING)
        .select_related("booking__client", "booking__creator__user")
        .order_by("booking__starts_at", "booking_id", "recipient")
    )


@dataclass
class Delivery:
    reminder: BookingReminder
    context: dict
    sent_at: object = None
    error: object = None
    permanent: bool = False

    def fail(self, error, *, permanent):
        self.error, self.permanent = error, permanent


def _send(claimed, deliveries, *, run):
    now = run.now
    connection = get_connection()
    smtp_error = _open(connection)
    started = time.monotonic()
    out_of_time = False
    try:
        for reminder in claimed:
            elapsed = timedelta(seconds=time.monotonic() - started)
            out_of_time = run.time_is_up()
            if elapsed >= SEND_DEADLINE or out_of_time:
                break  # The rest goes back to the queue unattempted.
            delivery, message = _prepare(reminder, connection)
            deliveries.append(delivery)
            if delivery.error is not None:
                pass  # Missing or invalid data: already a permanent failure.
            elif now + elapsed >= reminder.booking.starts_at:
                delivery.fail("The call started before its reminder could be sent", permanent=True)
            elif smtp_error is not None:
                delivery.fail(smtp_error, permanent=False)
            else:
                try:
                    connection.send_messages([message])
                    delivery.sent_at = now + elapsed
                except smtplib.SMTPRecipientsRefused as exc:
                    # 5xx: the server will never take this address; 4xx: try again later.
                    codes = [code for code, _ in exc.recipients.values()]
                    delivery.fail(exc, permanent=bool(codes) and min(codes) >= 500)
                except OSError as exc:  # smtplib.SMTPException is an OSError too
                    delivery.fail(exc, permanent=False)
                    if _connection_lost(exc):
                        smtp_error = _reopen(connection)
            _count(delivery, run)
    finally:
        _close(connection)
    if out_of_time:
        run.check_time()
    return smtp_error


def _count(delivery, run):
    stats, email = run.stats, delivery.context["recipientEmail"]
    email_type = EMAIL_TYPES[delivery.reminder.recipient]
    booking_id = delivery.reminder.booking_id
    if delivery.sent_at:
        stats["emailsSent"] += 1
        stats["itemsProcessed"] = stats["emailsSent"]
        run.count(ItemOutcome.DONE)
        run.detail(f"sent {email_type} to {email} (booking {booking_id})")
        return
    stats["emailsFailed"] += 1
    error = logger.error_message(delivery.error)
    # A refused or missing address is the recipient's own problem; SMTP trouble is ours.
    run.count(ItemOutcome.REFUSED if delivery.permanent else ItemOutcome.FAILED, error)
    run.detail(f"failed {email_type} to {email or '-'} (booking {booking_id}): {error}")


def _people(booking, recipient):
    """(the person the reminder goes to, the person they are meeting)."""
    client, creator = booking.client, booking.creator.user
    return (client, creator) if recipient == Recipient.CLIENT else (creator, client)


def recipient_problem(person, role):
    """Why `person` cannot be emailed at all (a permanent failure), or ""."""
    if not person.email:
        return f"The {role} (user {person.pk}) has no email address"
    try:
        validate_email(person.email)
    except ValidationError:
        return f"The {role} (user {person.pk}) has an invalid email address: {person.email!r}"
    return ""


def _prepare(reminder, connection):
    """The delivery record and the message for one reminder; the delivery carries an
    error instead when the data needed to send it is missing."""
    booking = reminder.booking
    person, other = _people(booking, reminder.recipient)
    other_key = "creatorName" if reminder.recipient == Recipient.CLIENT else "clientName"
    context = {
        "recipientEmail": person.email,
        "recipientName": display_name(person),
        other_key: display_name(other),
        "callDateTime": iso_utc(booking.starts_at),
    }
    delivery = Delivery(reminder=reminder, context=context)
    role = reminder.recipient.lower()
    problem = recipient_problem(person, role)
    if problem:
        delivery.fail(problem, permanent=True)
        return delivery, None
    message = reminder_message(
        booking=booking, role=role, person=person, other=other, connection=connection
    )
    return delivery, message


def _open(connection):
    try:
        connection.open()
    except OSError as exc:
        return exc
    return None


def _reopen(connection):
    _close(connection)
    return _open(connection)


def _close(connection):
    # A broken connection has nothing left to release.
    with contextlib.suppress(OSError):
        connection.close()


def _connection_lost(exc):
    return isinstance(exc, smtplib.SMTPServerDisconnected) or not isinstance(
        exc, smtplib.SMTPException
    )


def _record(deliveries, *, token):
    """Store each outcome, put unattempted claims back and write the EMAIL_* rows."""
    sent, failed, logs = [], [], []
    for delivery in deliveries:
        reminder = delivery.reminder
        email_type = EMAIL_TYPES[reminder.recipient]
        user_id = _recipient_id(reminder)
        if delivery.sent_at:
            sent.append(reminder.pk)
            logs.append(
                logger.log_email_sent(
                    reminder.booking_id, user_id, email_type, delivery.context, save=False
                )
            )
            continue
        reminder.attempts += 1
        reminder.status = Status.FAILED if delivery.permanent else Status.PENDING
        reminder.last_error = logger.error_message(delivery.error)
        failed.append(reminder)
        logs.append(
            logger.log_email_error(
                reminder.booking_id,
                user_id,
                email_type,
                delivery.error,
                {**delivery.context, "willRetry": not delivery.permanent},
                save=False,
            )
        )
    # One statement for all the sent rows (the common case); failures each carry their
    # own error, and are few.
    sent_at = max((delivery.sent_at for delivery in deliveries if delivery.sent_at), default=None)
    for start in range(0, len(sent), BULK_BATCH_SIZE):
        BookingReminder.objects.filter(pk__in=sent[start : start + BULK_BATCH_SIZE]).update(
            status=Status.SENT, sent_at=sent_at, attempts=F("attempts") + 1, last_error=""
        )
    if failed:
        BookingReminder.objects.bulk_update(
            failed, ["status", "attempts", "last_error"], batch_size=BULK_BATCH_SIZE
        )
    BookingReminder.objects.filter(claim_token=token, status=Status.SENDING).update(
        status=Status.PENDING
    )
    Log.objects.bulk_create(logs, batch_size=BULK_BATCH_SIZE)


def _recipient_id(reminder):
    booking = reminder.booking
    return booking.client_id if reminder.recipient == Recipient.CLIENT else booking.creator.user_id


def _mark_bookings_done(scope):
    """Set `reminder_sent` on the bookings in `scope` whose two reminders are sent or given up."""

    def done(recipient):
        return Exists(
            BookingReminder.objects.filter(
                booking=OuterRef("pk"), recipient=recipient, status__in=DONE_STATUSES
            )
        )

    finished = (
        Booking.objects.filter(scope)
        .filter(done(Recipient.CLIENT), done(Recipient.CREATOR))
        # NO KEY UPDATE does not wait on reminder inserts (their FK check holds KEY SHARE);
        # a row another run is updating this instant is left to it.
        .select_for_update(no_key=True, skip_locked=True, of=("self",))
        .values("pk")
    )
    with transaction.atomic():
        Booking.objects.filter(pk__in=finished).update(reminder_sent=True)
