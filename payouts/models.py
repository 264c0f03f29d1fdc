"""Payouts, the Stripe events already processed, and the payout audit trail's admin page.

A payout's terms (creator, amount, currency) may change only while it is REQUESTED, and
its lifecycle fields (status, approval, claim, Stripe id, outcome) only through the
conditional UPDATEs of `payouts.lifecycle` and the jobs: `Payout.save()` refuses anything
else on an existing row. Creating a row in any state stays possible (imports, fixtures).
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction

from cronlogs.models import Log
from payouts.money import currency_problem, normalize_currency, payout_terms_problem

TERMS = ("creator", "amount", "currency")
# Written by payouts.lifecycle and the jobs with conditional UPDATEs, never by a save().
LIFECYCLE_FIELDS = (
    "status",
    "approved_at",
    "approved_by",
    "paid_at",
    "failed_at",
    "failure_reason",
    "stripe_payout_id",
    "idempotency_key",
    "claimed_at",
    "flagged_at",
    "automatic",
)


class PayoutLocked(ValidationError):
    """A save would change what a payout's lifecycle or approval has fixed."""


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
        "than 24 hours ago with no Stripe payout recorded. The payout jobs leave it alone; it "
        "leaves this state only through a check against Stripe (the admin's Settle with Stripe "
        "id / Mark failed, or reconcile-payouts), which clears it.",
    )

    class Meta:
        indexes = [
            models.Index(fields=["status", "approved_at"], name="payout_status_approved_idx")
        ]
        permissions = [
            ("approve_payout", "Can approve and reject payout requests"),
            ("pay_payout", "Can pay approved payouts now from the admin"),
            ("settle_payout", "Can settle or fail flagged payouts against Stripe"),
        ]

    def __str__(self):
        return f"Payout #{self.pk} {self.amount} {self.currency} ({self.status})"

    def save(self, *args, **kwargs):
        if self.pk is None or kwargs.get("force_insert"):
            return super().save(*args, **kwargs)
        with transaction.atomic(using=kwargs.get("using")):
            # Locked so an approval cannot slip in between this check and the write.
            stored = self._stored(lock=True)
            if stored is not None:
                locked_changes(self, stored, update_fields=kwargs.get("update_fields"))
            return super().save(*args, **kwargs)

    @property
    def editable(self):
        """Whether staff may still change its terms: only while it is a request."""
        return self.status == self.Status.REQUESTED

    def clean(self):
        """The checks of a form: a supported currency (any case, stored upper), an amount
        more than zero and exact in it, and no change a save would refuse."""
        super().clean()
        self.currency = normalize_currency(self.currency)
        errors = {}
        problem = currency_problem(self.currency)
        if problem:
            errors["currency"] = problem
        elif self.amount is not None:
            problem = payout_terms_problem(self.amount, self.currency)
            if problem:
                errors["amount"] = problem
        if errors:
            raise ValidationError(errors)
        stored = self._stored()
        if stored is not None:
            locked_changes(self, stored)

    def _stored(self, *, lock=False):
        if self.pk is None:
            return None
        rows = Payout.objects.filter(pk=self.pk)
        if lock:
            rows = rows.select_for_update()
        return rows.values(*(_attname(name) for name in (*TERMS, *LIFECYCLE_FIELDS))).first()


def _attname(name):
    return Payout._meta.get_field(name).attname


def locked_changes(payout, stored, *, update_fields=None):
    """Raise PayoutLocked when `payout` differs from its `stored` row in a field that saving
    may not change: a lifecycle field ever, its terms once it is no longer REQUESTED."""
    names = set(update_fields) if update_fields is not None else None

    def changed(name):
        field = Payout._meta.get_field(name)
        if names is not None and not {field.name, field.attname} & names:
            return False
        try:
            value = field.to_python(getattr(payout, field.attname))
        except ValidationError:
            return True
        return value != stored[field.attname]

    lifecycle = [name for name in LIFECYCLE_FIELDS if changed(name)]
    if lifecycle:
        raise PayoutLocked(
            f"Payout #{payout.pk}: {', '.join(lifecycle)} change only through the lifecycle "
            "actions (approve, reject, pay, settle, mark failed in payouts.lifecycle), not by "
            "saving the row."
        )
    if stored["status"] == Payout.Status.REQUESTED:
        return
    terms = [name for name in TERMS if changed(name)]
    if terms:
        raise PayoutLocked(
            f"Payout #{payout.pk} is {stored['status']}: its {', '.join(terms)} were fixed when "
            "it was approved and can no longer change."
        )


class StripeEvent(models.Model):
    """A Stripe webhook event already handled: each event id is acted on once, so a
    redelivery (Stripe retries for up to three days) changes nothing."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=64)
    account = models.CharField(max_length=255, blank=True, default="")
    payout = models.ForeignKey(
        Payout, on_delete=models.SET_NULL, null=True, blank=True, related_name="stripe_events"
    )
    outcome = models.TextField(blank=True, default="")
    received_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.type} {self.event_id}"


class PayoutAudit(Log):
    """The admin's page of PAYOUT_AUDIT rows (who did what to which payout); no table."""

    TYPES = (Log.Type.PAYOUT_AUDIT,)

    class Meta:
        proxy = True
        verbose_name = "payout audit row"
        verbose_name_plural = "payout audit trail"
