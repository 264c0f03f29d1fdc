from django.conf import settings
from django.db import models


class Payout(models.Model):
    """Money moving from the platform to a creator's Stripe connected account."""

    class Status(models.TextChoices):
        REQUESTED = "REQUESTED"
        APPROVED = "APPROVED"
        PROCESSING = "PROCESSING"
        PAID = "PAID"
        FAILED = "FAILED"
        REJECTED = "REJECTED"
        CANCELED = "CANCELED"

    creator = models.ForeignKey(
        "bookings.Creator", on_delete=models.PROTECT, related_name="payouts"
    )
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED)
    automatic = models.BooleanField(default=False)
    stripe_payout_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="approved_payouts",
    )
    paid_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        unique=True,
        editable=False,
        help_text="Sent to Stripe with every attempt to create this payout, so a retry or a "
        "rerun after a crash replays the first attempt instead of paying twice.",
    )
    claimed_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When a worker moved this payout to PROCESSING to pay it.",
    )
    flagged_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When this payout was flagged for staff (CRITICAL PAYOUT_ERROR): claimed more "
        "than 24 hours ago with no Stripe payout recorded. The jobs leave it alone from then on.",
    )

    class Meta:
        indexes = [
            models.Index(fields=["status", "approved_at"], name="payout_status_approved_idx")
        ]

    def __str__(self):
        return f"Payout #{self.pk} {self.amount} {self.currency} ({self.status})"
