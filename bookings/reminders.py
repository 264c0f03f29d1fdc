"""send-booking-reminders: email the client and the creator shortly before their call.

A reminder is for a booking at a start time: each (booking, recipient, start time) has one
`BookingReminder` row, so a call that moves is reminded again before its new start. A run
walks the due bookings in chunks; for each chunk it claims the open rows with one
conditional UPDATE that only one worker can win (PENDING -> SENDING), checks each booking
again right before its messages go out (still CONFIRMED, still at that time), sends over
EMAIL_CONNECTIONS SMTP connections (`bookings.reminder_sending`), then records the
outcomes: SENT, FAILED (given up: the address is missing, invalid or refused with a 5xx),
SKIPPED (not needed after all) or back to PENDING (a transient failure, retried by a
later run while the call has not started). No database transaction is open while sending.
"""

import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Case, Exists, F, OuterRef, Q, Value, When

from bookings.emails import display_name, recipient_zone
from bookings.models import Booking, BookingReminder
from bookings.reminder_sending import Delivery, SenderPool, monotonic_clock
from cronlogs import logger
from cronlogs.logger import iso_utc
from cronlogs.models import Log
from cronlogs.work import ItemOutcome

Recipient, Status = BookingReminder.Recipient, BookingReminder.Status

EMAIL_TYPES = {
    Recipient.CLIENT: "booking_reminder_client",
    Recipient.CREATOR: "booking_reminder_creator",
}
# A claim this old is presumed left behind by a crashed run and may be claimed again.
STALE_CLAIM_AFTER = timedelta(minutes=5)
# A run stops sending under a claim long before another run may take it over, so a slow
# run and a crash-recovering run never send the same reminder.
SEND_DEADLINE = STALE_CLAIM_AFTER / 2
# Bookings claimed and sent at a time: memory stays flat however many are due, and each
# chunk costs the same handful of queries.
CHUNK_BOOKINGS = 1000
SAME_PERSON = "The client and the creator are the same person: one reminder is enough"
# Done for good: sent, given up, or not needed (one person). A reminder skipped because its
# booking was cancelled or moved right before it went out is not: if the booking is
# confirmed again at that time, or moved back to it, it is claimed and sent after all.
DONE = Q(status__in=(Status.SENT, Status.FAILED)) | Q(status=Status.SKIPPED, last_error=SAME_PERSON)
REOPENED = Q(status=Status.SKIPPED) & ~Q(last_error=SAME_PERSON)
INTERRUPTED = "Sending was interrupted by an unexpected error; it is retried by the next run"


class ReminderDeliveryError(Exception):
    """The SMTP server could not be reached; the reminders stay due for the next run."""


def due_window(*, now):
    """Calls starting after `now` and within lead + cadence minutes (15 + 5 by default)."""
    minutes = settings.REMINDER_LEAD_MINUTES + settings.REMINDER_CADENCE_MINUTES
    return now, now + timedelta(minutes=minutes)


def reminded_at_current_start(recipient):
    """Bookings whose reminder to `recipient` for their current start time is done."""
    return Exists(
        BookingReminder.objects.filter(
            booking=OuterRef("pk"),
            recipient=recipient,
            starts_at=OuterRef("starts_at"),
        ).filter(DONE)
    )


def open_reminders_filter():
    """Bookings with a reminder still to send for their current start time.

    `reminder_sent` alone cannot say: the platform moves bookings with plain UPDATEs that
    leave it set. It only counts for a booking with no reminder rows at all, which was
    reminded by something else (the platform's own job, before this one ran).
    """
    done_here = Q(reminded_at_current_start(Recipient.CLIENT)) & Q(
        reminded_at_current_start(Recipient.CREATOR)
    )
    done_elsewhere = Q(reminder_sent=True) & ~Q(
        Exists(BookingReminder.objects.filter(booking=OuterRef("pk")))
    )
    return ~done_here & ~done_elsewhere


def due_bookings_filter(*, now):
    min_time, max_time = due_window(now=now)
    return Q(status=Booking.Status.CONFIRMED, starts_at__gt=min_time, starts_at__lte=max_time)


def send_due_reminders(run):
    """Remind both people of every CONFIRMED booking that starts within the next 20 minutes
    without having started and whose reminder for that start time is not done, so a missed
    run catches up and a moved call is reminded again."""
    now, stats = run.now, run.stats
    min_time, max_time = due_window(now=now)
    _start_counting(stats, totalBookings=0)
    stats["timeWindow"] = {"minTime": iso_utc(min_time), "maxTime": iso_utc(max_time)}
    due = Booking.objects.filter(due_bookings_filter(now=now)).filter(open_reminders_filter())
    if run.dry_run:
        plan_reminders(due, run=run)
        return
    smtp_error = _remind(due, run=run)
    _note_lost_connection(stats, smtp_error)
    if smtp_error is not None and not stats["emailsSent"]:
        raise ReminderDeliveryError(
            f"SMTP server unavailable ({logger.error_message(smtp_error)}); "
            f"{stats['emailsFailed']} reminder(s) will be retried by the next run"
        ) from smtp_error


def _note_lost_connection(stats, smtp_error):
    """A connection that could not be used while others sent: said in the run's row."""
    if smtp_error is not None and stats["emailsSent"]:
        stats["smtpConnectionError"] = (
            f"an SMTP connection could not be used ({logger.error_message(smtp_error)}); "
            "the others sent the reminders"
        )


def _start_counting(stats, **first):
    stats.update(first)
    for key in ("emailsSent", "emailsFailed", "emailsSkipped", "alreadySent", "emailsDeferred"):
        stats[key] = 0
    stats["itemsProcessed"] = 0


def remind_bookings_now(run, *, booking_ids):
    """Send the reminders of the given bookings now (the admin's "send reminder now").

    Ignores how far away the call is, but keeps the other rules: CONFIRMED bookings only,
    never after the call has started, never twice to the same person for the same start.
    """
    stats = run.stats
    pks = sorted(set(booking_ids))
    _start_counting(stats, totalBookings=len(pks), skipped=0)
    eligible = Booking.objects.filter(
        pk__in=pks, status=Booking.Status.CONFIRMED, starts_at__gt=run.now
    )
    due = eligible.filter(open_reminders_filter())
    eligible_count, due_count = eligible.count(), due.count()
    stats["skipped"] = len(pks) - eligible_count
    stats["alreadySent"] = 2 * (eligible_count - due_count)
    if run.dry_run:
        plan_reminders(due, run=run)
        return
    smtp_error = _remind(due, run=run, counted=True)
    _note_lost_connection(stats, smtp_error)
    if smtp_error is not None and not stats["emailsSent"]:
        stats["error"] = f"SMTP server unavailable: {logger.error_message(smtp_error)}"


def plan_reminders(due, *, run):
    """What a real run would do with the open reminders of the bookings in `due`, in
    `run.stats`: `emailsToSend` (= itemsProcessed) and `emailsToRefuse`, a line each."""
    stats = run.stats
    stats.update(emailsToSend=0, emailsToRefuse=0)
    for chunk in _chunks(due):
        done = _done_reminders(chunk)
        stats["totalBookings"] += len(chunk)
        for booking in chunk:
            for recipient in _recipients(booking):
                if (booking.pk, recipient) in done:
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


def _remind(due, *, run, counted=False):
    """Claim, check, send and record the open reminders of the bookings in `due`, a
    chunk at a time. Returns the SMTP connection error if a connection could not be
    used, else None."""
    stats = run.stats
    clock = monotonic_clock(run.now)
    token = uuid.uuid4()
    warned_zones = set()
    with SenderPool(connections=settings.EMAIL_CONNECTIONS, run_clock=clock) as pool:
        for chunk in _chunks(due):
            if not counted:
                stats["totalBookings"] += len(chunk)
            run.check_time()
            _warn_about_time_zones(chunk, warned_zones)
            _create_reminder_rows(chunk)
            claimed_at = clock(time.monotonic())
            ids = [booking.pk for booking in chunk]
            claimed = claim_reminders(chunk, now=claimed_at, token=token)
            stats["alreadySent"] += sum(len(_recipients(b)) for b in chunk) - len(claimed)
            batches = []
            try:
                deadline = time.monotonic() + SEND_DEADLINE.total_seconds()
                # The client's messages, then the creator's, each batch checked against
                # the bookings right before it goes out; a batch is recorded while the
                # next one is on the wire.
                # A batch is listed before it goes out and unlisted once recorded, so
                # whatever happens, each message sent is recorded below as sent.
                for recipient in (Recipient.CLIENT, Recipient.CREATOR):
                    batch = [_delivery(r, deadline) for r in claimed if r.recipient == recipient]
                    _check_bookings_again(batch)
                    batches.append(batch)
                    pool.start([delivery for delivery in batch if not delivery.skipped])
                    if len(batches) > 1:
                        _record(batches[0], run=run)
                        batches.pop(0)
                    pool.wait()
            finally:
                # Recorded even if the run dies half way, so what was sent is never sent again.
                pool.wait()
                for batch in batches:
                    _record(batch, run=run)
                _release_unattempted(token)
                _mark_bookings_done(ids)
        return pool.first_connection_error()


def _chunks(due):
    """The bookings of `due` with their people, CHUNK_BOOKINGS at a time, soonest first."""
    bookings = due.select_related("client", "creator__user").order_by("starts_at", "pk")
    last = None
    while True:
        page = bookings
        if last is not None:
            page = page.filter(
                Q(starts_at__gt=last.starts_at) | Q(starts_at=last.starts_at, pk__gt=last.pk)
            )
        chunk = list(page[:CHUNK_BOOKINGS])
        if not chunk:
            return
        yield chunk
        if len(chunk) < CHUNK_BOOKINGS:
            return
        last = chunk[-1]


def _recipients(booking):
    if booking.client_id == booking.creator.user_id:
        return (Recipient.CLIENT,)
    return (Recipient.CLIENT, Recipient.CREATOR)


def _done_reminders(chunk):
    return set(
        BookingReminder.objects.filter(
            booking_id__in=[booking.pk for booking in chunk],
            starts_at=F("booking__starts_at"),
        )
        .filter(DONE)
        .values_list("booking_id", "recipient")
    )


def _create_reminder_rows(chunk):
    rows = []
    for booking in chunk:
        for recipient in (Recipient.CLIENT, Recipient.CREATOR):
            row = BookingReminder(
                booking_id=booking.pk, recipient=recipient, starts_at=booking.starts_at
            )
            if recipient not in _recipients(booking):
                row.status, row.last_error = Status.SKIPPED, SAME_PERSON
            rows.append(row)
    # In booking order, so two runs inserting at once lock index entries in the same order.
    BookingReminder.objects.bulk_create(rows, ignore_conflicts=True)


def claim_reminders(bookings, *, now, token):
    """Claim, for the run `token`, the open reminders for the current start time of
    `bookings` (loaded with their people): PENDING ones, SENDING ones whose claim went
    stale, and ones skipped while their booking was cancelled or elsewhere in time (it is
    CONFIRMED at that time again). Returns the claimed rows, each holding its booking from
    `bookings`."""
    booking_ids = [booking.pk for booking in bookings]
    claimable = (
        BookingReminder.objects.filter(
            booking_id__in=booking_ids,
            starts_at=F("booking__starts_at"),
            booking__status=Booking.Status.CONFIRMED,
        )
        .filter(
            Q(status=Status.PENDING)
            | Q(status=Status.SENDING, claimed_at__lt=now - STALE_CLAIM_AFTER)
            | REOPENED
        )
        # Rows another run is claiming this instant are left to it, not waited for.
        .select_for_update(skip_locked=True, of=("self",))
        .values("pk")
    )
    with transaction.atomic():
        BookingReminder.objects.filter(pk__in=claimable).update(
            status=Status.SENDING, claim_token=token, claimed_at=now
        )
    claimed = list(
        BookingReminder.objects.filter(
            claim_token=token, status=Status.SENDING, booking_id__in=booking_ids
        ).order_by("booking_id", "recipient")
    )
    # The bookings and people were just loaded; _check_bookings_again looks at the
    # bookings once more right before sending.
    by_id = {booking.pk: booking for booking in bookings}
    for reminder in claimed:
        reminder.booking = by_id[reminder.booking_id]
    claimed.sort(key=lambda reminder: (reminder.booking.starts_at, reminder.booking_id))
    return claimed


def _delivery(reminder, deadline):
    person, other = _people(reminder.booking, reminder.recipient)
    other_key = "creatorName" if reminder.recipient == Recipient.CLIENT else "clientName"
    delivery = Delivery(
        reminder=reminder,
        person=person,
        other=other,
        role=reminder.recipient.lower(),
        context={
            "recipientEmail": person.email,
            "recipientName": display_name(person),
            other_key: display_name(other),
            "callDateTime": iso_utc(reminder.starts_at),
        },
        deadline=deadline,
    )
    problem = recipient_problem(person, delivery.role)
    if problem:
        delivery.fail(problem, permanent=True)
        delivery.deadline = 0  # Nothing to send.
    return delivery


def _check_bookings_again(batch):
    """Right before a batch goes out: a booking no longer CONFIRMED, or moved, is not
    reminded (its claim is closed as SKIPPED with the reason)."""
    ids = {delivery.reminder.booking_id for delivery in batch if delivery.error is None}
    if not ids:
        return
    current = {
        pk: (status, starts_at)
        for pk, status, starts_at in Booking.objects.filter(pk__in=ids).values_list(
            "pk", "status", "starts_at"
        )
    }
    for delivery in batch:
        if delivery.error is not None:
            continue
        status, starts_at = current.get(delivery.reminder.booking_id, (None, None))
        if status != Booking.Status.CONFIRMED:
            delivery.skipped = f"The booking is {status or 'gone'} now, not CONFIRMED"
        elif starts_at != delivery.reminder.starts_at:
            delivery.skipped = (
                f"The call moved to {iso_utc(starts_at)}; it is reminded for its new time"
            )


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


def _warn_about_time_zones(chunk, warned):
    """One WARNING row per run for each person whose time zone cannot be read: their
    reminder shows the call in DEFAULT_USER_TIMEZONE instead."""
    fallback = getattr(settings, "DEFAULT_USER_TIMEZONE", "UTC")
    for booking in chunk:
        for person in (booking.client, booking.creator.user):
            if person.pk in warned or recipient_zone(person.timezone) is not None:
                continue
            warned.add(person.pk)
            logger.write_log(
                type=Log.Type.DATA_WARNING,
                status=Log.Status.SUCCESS,
                level=Log.Level.WARNING,
                message=(
                    f"User {person.pk} has an unknown time zone {person.timezone!r}: "
                    f"reminders show {fallback}"
                ),
                context={
                    "userId": person.pk,
                    "bookingId": booking.pk,
                    "field": "timezone",
                    "value": person.timezone,
                    "fallback": fallback,
                },
            )


def _release_unattempted(token):
    """Put the claims a run left unattempted (out of time) back in the queue."""
    BookingReminder.objects.filter(claim_token=token, status=Status.SENDING).update(
        status=Status.PENDING
    )


def _record(deliveries, *, run):
    """Store each outcome and write the EMAIL_* rows."""
    sent, closed, failed, logs = [], [], [], []
    sent_at = None
    for delivery in deliveries:
        reminder = delivery.reminder
        email_type = EMAIL_TYPES[reminder.recipient]
        user_id = delivery.person.pk
        if delivery.skipped:
            reminder.status, reminder.last_error = Status.SKIPPED, delivery.skipped
            closed.append(reminder)
            logs.append(
                logger.write_log(
                    save=False,
                    type=Log.Type.EMAIL_SKIPPED,
                    status=Log.Status.SUCCESS,
                    level=Log.Level.INFO,
                    message=f"Email not sent: {email_type} for booking {reminder.booking_id}: "
                    f"{delivery.skipped}",
                    context={
                        "bookingId": reminder.booking_id,
                        "userId": user_id,
                        "emailType": email_type,
                        **delivery.context,
                        "reason": delivery.skipped,
                    },
                )
            )
        elif delivery.sent_at:
            sent.append(reminder.pk)
            sent_at = max(sent_at or delivery.sent_at, delivery.sent_at)
            logs.append(
                logger.log_email_sent(
                    reminder.booking_id, user_id, email_type, delivery.context, save=False
                )
            )
        elif delivery.attempted:
            if delivery.error is None:
                # Its sender stopped on an unexpected error mid-send.
                delivery.error = INTERRUPTED
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
        _count(delivery, run)
    # One statement for all the sent rows (the common case); failures each carry their
    # own error, and are few.
    if sent:
        BookingReminder.objects.filter(pk__in=sent).update(
            status=Status.SENT, sent_at=sent_at, attempts=F("attempts") + 1, last_error=""
        )
    if failed or closed:
        BookingReminder.objects.bulk_update(
            [*failed, *closed], ["status", "attempts", "last_error"]
        )
    Log.objects.bulk_create(logs)


def _count(delivery, run):
    stats = run.stats
    email = delivery.context["recipientEmail"] or "-"
    email_type = EMAIL_TYPES[delivery.reminder.recipient]
    booking_id = delivery.reminder.booking_id
    if delivery.skipped:
        stats["emailsSkipped"] += 1
        run.count(ItemOutcome.SKIPPED)
        run.detail(f"not sent {email_type} to {email} (booking {booking_id}): {delivery.skipped}")
    elif delivery.sent_at:
        stats["emailsSent"] += 1
        stats["itemsProcessed"] = stats["emailsSent"]
        run.count(ItemOutcome.DONE)
        run.detail(f"sent {email_type} to {email} (booking {booking_id})")
    elif delivery.attempted:
        stats["emailsFailed"] += 1
        error = logger.error_message(delivery.error)
        # A refused or missing address is the recipient's own problem; SMTP trouble is ours.
        run.count(ItemOutcome.REFUSED if delivery.permanent else ItemOutcome.FAILED, error)
        run.detail(f"failed {email_type} to {email} (booking {booking_id}): {error}")
    else:
        stats["emailsDeferred"] += 1


def _mark_bookings_done(booking_ids):
    """Set `reminder_sent` on the bookings whose reminders for their current start time are
    all done (sent, given up or not needed), and clear it on those that moved since."""
    settled = (
        Booking.objects.filter(pk__in=booking_ids)
        # NO KEY UPDATE does not wait on reminder inserts (their FK check holds KEY SHARE);
        # a row another run is updating this instant is left to it.
        .select_for_update(no_key=True, skip_locked=True, of=("self",))
        .values("pk")
    )
    done = Q(reminded_at_current_start(Recipient.CLIENT)) & Q(
        reminded_at_current_start(Recipient.CREATOR)
    )
    with transaction.atomic():
        Booking.objects.filter(pk__in=settled).update(
            reminder_sent=Case(When(done, then=Value(True)), default=Value(False))
        )
