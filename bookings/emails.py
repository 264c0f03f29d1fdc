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


def local_call_time(moment, timezone_name):
    """`moment` in the recipient's own time zone, e.g. "Tuesday, 31 December 2024 at 15:30 CET".

    An unknown time zone name falls back to UTC, which the abbreviation then says.
    """
    try:
        zone = ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        zone = UTC
    local = moment.astimezone(zone)
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


def reminder_message(*, booking, role, person, other, connection=None):
    """The reminder to `person` ("client" or "creator" of `booking`, as `role` says) about
    their call with `other`: text and HTML parts, ready for a Django email backend."""
    rendered = render_booking_reminder(
        user_name=display_name(person),
        other_person_name=display_name(other),
        call_datetime=booking.starts_at,
        timezone_name=person.timezone,
        url=booking_page_url(booking.pk),
    )
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "callastar.com"
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[person.email],
        # The same id on a resend after a crash lets mailbox providers drop the duplicate.
        headers={"Message-ID": f"<booking-{booking.pk}-reminder-{role}@{domain}>"},
        connection=connection,
    )
    message.attach_alternative(rendered.html, "text/html")
    return message
