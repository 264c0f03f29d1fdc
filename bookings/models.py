from decimal import Decimal
from zoneinfo import available_timezones

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra_fields):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields["is_staff"] = True
        extra_fields["is_superuser"] = True
        return self._create_user(email, password, **extra_fields)


TIMEZONE_CHOICES = sorted((name, name) for name in available_timezones())


class User(AbstractUser):
    """A fan or a creator; signs in with an email address."""

    username = None
    first_name = None
    last_name = None
    email = models.EmailField("email address", unique=True)
    name = models.CharField(max_length=150, blank=True, help_text="Display name.")
    timezone = models.CharField(
        max_length=64,
        choices=TIMEZONE_CHOICES,
        default="Europe/Paris",
        help_text="IANA time zone used for this person's emails.",
    )

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = []

    objects = UserManager()

    def __str__(self):
        return self.name or self.email

    def get_full_name(self):
        return self.name or self.email

    def get_short_name(self):
        return self.name or self.email


class Creator(models.Model):
    class PayoutSchedule(models.TextChoices):
        DAILY = "DAILY"
        WEEKLY = "WEEKLY"
        MANUAL = "MANUAL"

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="creator")
    currency = models.CharField(max_length=3, default="EUR", help_text="ISO 4217 code.")
    stripe_account_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    is_stripe_onboarded = models.BooleanField(default=False)
    payout_schedule = models.CharField(
        max_length=10, choices=PayoutSchedule.choices, default=PayoutSchedule.WEEKLY
    )
    payout_minimum = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("10.00"))
    is_payout_blocked = models.BooleanField(default=False)
    payout_block_reason = models.TextField(blank=True, default="")

    def __str__(self):
        return str(self.user)


class Booking(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING"
        CONFIRMED = "CONFIRMED"
        COMPLETED = "COMPLETED"
        CANCELLED = "CANCELLED"

    client = models.ForeignKey(User, on_delete=models.PROTECT, related_name="bookings")
    creator = models.ForeignKey(Creator, on_delete=models.PROTECT, related_name="bookings")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    starts_at = models.DateTimeField()
    duration_minutes = models.PositiveIntegerField(default=30)
    total_price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    daily_room_name = models.CharField(max_length=255, null=True, blank=True)
    daily_room_url = models.URLField(max_length=500, null=True, blank=True)
    reminder_sent = models.BooleanField(
        default=False,
        db_index=True,
        help_text="Both reminder emails of this booking are done (sent or given up).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["status", "starts_at"], name="booking_status_starts_idx")]

    def __str__(self):
        return f"Booking #{self.pk}"


class BookingReminder(models.Model):
    """The reminder email of one booking, at one start time, to one of its two people.

    A reminder is for a booking *at a start time*: when the call moves, the old rows stay
    (what was sent, when) and the move gets rows of its own, so both people are reminded
    again before the new start. A run claims a row (PENDING -> SENDING) with a conditional
    UPDATE before sending, so each recipient gets at most one email per start time however
    many runs race; it records SENT, FAILED (given up) or SKIPPED (not needed: the booking
    was cancelled or moved before the send, or client and creator are the same person)
    afterwards, or puts a transient failure back to PENDING.
    """

    class Recipient(models.TextChoices):
        CLIENT = "CLIENT"
        CREATOR = "CREATOR"

    class Status(models.TextChoices):
        PENDING = "PENDING"
        SENDING = "SENDING", "Sending (claimed by a run)"
        SENT = "SENT"
        FAILED = "FAILED", "Failed (given up)"
        SKIPPED = "SKIPPED", "Skipped (not needed)"

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="reminders")
    recipient = models.CharField(max_length=10, choices=Recipient.choices)
    starts_at = models.DateTimeField(help_text="The start time of the call this reminder is for.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    claim_token = models.UUIDField(
        null=True, blank=True, db_index=True, help_text="The run that claimed it last."
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["booking", "recipient", "starts_at"],
                name="booking_reminder_once_per_recipient_and_start",
            )
        ]

    def __str__(self):
        return (
            f"Reminder of booking #{self.booking_id} at {self.starts_at:%Y-%m-%d %H:%M} to the "
            f"{self.recipient.lower()}"
        )
