"""The booking reminder email: the platform's `generateBookingReminderEmail()` as templates.

`templates/emails/booking_reminder.html` (table layout, inline styles, for mail clients)
and `booking_reminder.txt` (the same content as plain text) share one context.
"""

from dataclasses import dataclass
from datetime import UTC
from email.utils import parseaddr
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import get_template
from django.utils import dateformat, translation

REMINDER_SUBJECT = "🕒 Reminder: Your call is starting soon!"
BRAND_NAME = "Call a Star"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def booking_page_url(booking_id):
    """The platform's page for a booking; the Daily room URL never goes into an email."""
    return f"{settings.APP_URL}/bookings/{booking_id}"


def recipient_zone(timezone_name):
    """The ZoneInfo of an IANA name, or None when the name is empty or unknown."""
    try:
        return ZoneInfo(timezone_name) if timezone_name else None
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return None


def default_zone():
    return recipient_zone(getattr(settings, "DEFAULT_USER_TIMEZONE", "UTC")) or UTC


def local_call_time(moment, timezone_name):
    """`moment` in the recipient's own time zone, e.g. "Tuesday, 31 December 2024 at 15:30 CET".

    An unknown or empty time zone name falls back to DEFAULT_USER_TIMEZONE (UTC by
    default), which the abbreviation then says; the reminder job logs the user once.
    """
    local = moment.astimezone(recipient_zone(timezone_name) or default_zone())
    with translation.override("en"):
        day_and_time = dateformat.format(local, r"l, j F Y \a\t H:i")
    # Not Django's "T": it prints nothing for the hour a DST change repeats; tzname()
    # tells the two apart (EDT, then EST).
    return f"{day_and_time} {local.tzname()}"


def render_booking_reminder(*, user_name, other_person_name, call_datetime, timezone_name, url):
    """Render the reminder for one recipient: `user_name` is who reads it, `other_person_name`
    who they are meeting, `call_datetime` the aware start time, shown in `timezone_name`."""
    context = {
        "subject": REMINDER_SUBJECT,
        "brand_name": BRAND_NAME,
        "app_url": settings.APP_URL,
        "user_name": user_name,
        "other_person_name": other_person_name,
        "call_time": local_call_time(call_datetime, timezone_name),
        "booking_url": url,
    }
    return RenderedEmail(
        subject=REMINDER_SUBJECT,
        text=get_template("emails/booking_reminder.txt").render(context),
        html=get_template("emails/booking_reminder.html").render(context),
    )


def display_name(user):
    return user.name or user.email


def reminder_message(*, booking, role, person, other, starts_at=None, connection=None):
    """The reminder to `person` ("client" or "creator" of `booking`, as `role` says) about
    their call with `other` starting at `starts_at` (default: the booking's start): text
    and HTML parts, ready for a Django email backend."""
    starts_at = starts_at or booking.starts_at
    rendered = render_booking_reminder(
        user_name=display_name(person),
        other_person_name=display_name(other),
        call_datetime=starts_at,
        timezone_name=person.timezone,
        url=booking_page_url(booking.pk),
    )
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "callastar.com"
    # One id per booking, start time and recipient: a resend after a crash keeps it (so
    # mailbox providers can drop the duplicate); a moved call's new reminder does not.
    start = starts_at.astimezone(UTC).strftime("%Y%m%dT%H%MZ")
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[person.email],
        headers={"Message-ID": f"<booking-{booking.pk}-{start}-reminder-{role}@{domain}>"},
        connection=connection,
    )
    message.attach_alternative(rendered.html, "text/html")
    return message
