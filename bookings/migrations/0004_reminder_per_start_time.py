"""A reminder is for a booking at a start time: add BookingReminder.starts_at.

Existing rows were for the booking's start as it is now, so they are backfilled with it.
Going back keeps, per booking and recipient, the newest row only (the old constraint
allowed one).
"""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def backfill_starts_at(apps, schema_editor):
    Booking = apps.get_model("bookings", "Booking")
    BookingReminder = apps.get_model("bookings", "BookingReminder")
    BookingReminder.objects.filter(starts_at__isnull=True).update(
        starts_at=Subquery(Booking.objects.filter(pk=OuterRef("booking_id")).values("starts_at")[:1])
    )


def keep_newest_per_recipient(apps, schema_editor):
    BookingReminder = apps.get_model("bookings", "BookingReminder")
    newer = BookingReminder.objects.filter(
        booking_id=OuterRef("booking_id"), recipient=OuterRef("recipient"), pk__gt=OuterRef("pk")
    )
    BookingReminder.objects.filter(models.Exists(newer)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0003_booking_reminder"),
    ]

    operations = [
        migrations.AddField(
            model_name="bookingreminder",
            name="starts_at",
            field=models.DateTimeField(
                null=True, help_text="The start time of the call this reminder is for."
            ),
        ),
        migrations.RunPython(backfill_starts_at, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="bookingreminder",
            name="starts_at",
            field=models.DateTimeField(help_text="The start time of the call this reminder is for."),
        ),
        migrations.RemoveConstraint(
            model_name="bookingreminder",
            name="booking_reminder_once_per_recipient",
        ),
        migrations.RunPython(migrations.RunPython.noop, keep_newest_per_recipient),
        migrations.AddConstraint(
            model_name="bookingreminder",
            constraint=models.UniqueConstraint(
                fields=("booking", "recipient", "starts_at"),
                name="booking_reminder_once_per_recipient_and_start",
            ),
        ),
        migrations.AlterField(
            model_name="bookingreminder",
            name="status",
            field=models.CharField(
                choices=[
                    ("PENDING", "Pending"),
                    ("SENDING", "Sending (claimed by a run)"),
                    ("SENT", "Sent"),
                    ("FAILED", "Failed (given up)"),
                    ("SKIPPED", "Skipped (not needed)"),
                ],
                default="PENDING",
                max_length=10,
            ),
        ),
    ]
