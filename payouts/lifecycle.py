"""Staff decisions on a payout request: create it, edit its terms while it is REQUESTED,
approve it for the next process-payouts run, or reject it. Each change is one conditional
UPDATE, so a decision can never overwrite a payout that moved on meanwhile (already
approved, already being paid), and each writes a PAYOUT_AUDIT row (`payouts.audit`).

    REQUESTED --approve--> APPROVED --process-payouts--> PROCESSING --> PAID | FAILED
    REQUESTED | APPROVED --reject--> REJECTED

Paying, settling and failing are the jobs' (`payouts.processing`); a payout flagged for
staff leaves its flag through `payouts.flagged`, against Stripe.
"""

from django.utils import timezone

from bookings.models import Creator
from payouts import audit
from payouts.models import Payout
from payouts.money import normalize_currency, payout_terms_problem

Status = Payout.Status


class PayoutActionRefused(Exception):
    """A staff action on a payout that its state, its terms or its approver rule out."""


class PayoutStateError(PayoutActionRefused):
    """The payout is not in a state that allows this decision."""


def create_payout_request(payout, *, by):
    """Save a new payout built by staff (creator, amount, currency) as REQUESTED."""
    _require_valid_terms(payout.amount, payout.currency, verb="requested")
    payout.currency = normalize_currency(payout.currency)
    payout.status = Status.REQUESTED
    payout.save(force_insert=True)
    audit.record_action(payout, by=by, action="create", before={})
    return payout


def edit_payout_request(payout, *, by, creator, amount, currency):
    """Change the terms of a REQUESTED payout; refused once it is approved (or anything else)."""
    _require_valid_terms(amount, currency, verb="requested")
    before = audit.snapshot(Payout.objects.get(pk=payout.pk))
    currency = normalize_currency(currency)
    updated = Payout.objects.filter(pk=payout.pk, status=Status.REQUESTED).update(
        creator=creator, amount=amount, currency=currency
    )
    if not updated:
        raise _state_error(payout, "edited", allowed=(Status.REQUESTED,))
    payout.refresh_from_db()
    if audit.snapshot(payout) != before:
        audit.record_action(payout, by=by, action="edit", before=before)
    return payout


def approve_payout(payout, *, by, now=None):
    """REQUESTED -> APPROVED, recording who approved it and when.

    Refused for a payout to the approver themselves, for terms Stripe cannot pay, and
    when the terms changed since `payout` was read: what is approved is what was seen.
    """
    now = now or timezone.now()
    if Creator.objects.filter(pk=payout.creator_id, user_id=getattr(by, "pk", None)).exists():
        raise PayoutActionRefused(
            f"Payout #{payout.pk} is to your own creator account: someone else must approve it."
        )
    _require_valid_terms(payout.amount, payout.currency, verb="approved", payout=payout)
    before = audit.snapshot(payout)
    currency = normalize_currency(payout.currency)
    updated = Payout.objects.filter(
        pk=payout.pk,
        status=Status.REQUESTED,
        flagged_at__isnull=True,
        creator_id=payout.creator_id,
        amount=payout.amount,
        currency=payout.currency,
    ).update(status=Status.APPROVED, approved_at=now, approved_by=by, currency=currency)
    if not updated:
        raise _state_error(payout, "approved", allowed=(Status.REQUESTED,))
    payout.status, payout.approved_at, payout.approved_by = Status.APPROVED, now, by
    payout.currency = currency
    audit.record_action(payout, by=by, action="approve", before=before)
    return payout


def reject_payout(payout, *, by, reason, now=None):
    """REQUESTED or APPROVED -> REJECTED, with the reason staff gave."""
    now = now or timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("A reason is required to reject a payout.")
    allowed = (Status.REQUESTED, Status.APPROVED)
    before = audit.snapshot(payout)
    metadata = {
        **(payout.metadata or {}),
        "rejectedBy": getattr(by, "pk", None),
        "rejectedAt": now.isoformat(),
    }
    updated = Payout.objects.filter(pk=payout.pk, status__in=allowed).update(
        status=Status.REJECTED, failure_reason=reason, metadata=metadata
    )
    if not updated:
        raise _state_error(payout, "rejected", allowed=allowed)
    payout.status, payout.failure_reason, payout.metadata = Status.REJECTED, reason, metadata
    audit.record_action(payout, by=by, action="reject", before=before)
    return payout


def _require_valid_terms(amount, currency, *, verb, payout=None):
    problem = payout_terms_problem(amount, currency)
    if problem:
        subject = f"Payout #{payout.pk}" if payout is not None else "A payout"
        raise PayoutActionRefused(f"{subject} cannot be {verb}: {problem}.")


def _state_error(payout, verb, *, allowed):
    stored = Payout.objects.filter(pk=payout.pk).first()
    if stored is None:
        return PayoutStateError(f"Payout #{payout.pk} no longer exists.")
    if stored.status in allowed and stored.flagged_at is None:
        return PayoutStateError(
            f"Payout #{payout.pk} changed while it was being {verb} (now {format_terms(stored)}); "
            "review it again."
        )
    if stored.flagged_at is not None:
        return PayoutStateError(
            f"Payout #{payout.pk} is flagged for staff; only a check against Stripe (Settle "
            "with Stripe id, Mark failed) can move it on."
        )
    return PayoutStateError(
        f"Payout #{payout.pk} is {stored.status}; only {' or '.join(allowed)} payouts can be "
        f"{verb}."
    )


def format_terms(payout):
    return f"{payout.amount} {payout.currency} to creator {payout.creator_id}"
