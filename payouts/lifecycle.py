"""Staff decisions on a payout request: approve it for the next process-payouts run, or
reject it. Each is one conditional UPDATE, so a decision can never overwrite a payout
that moved on meanwhile (already approved, already being paid).

    REQUESTED --approve--> APPROVED --process-payouts--> PROCESSING --> PAID | FAILED
    REQUESTED | APPROVED --reject--> REJECTED
"""

from django.utils import timezone

from payouts.models import Payout

Status = Payout.Status


class PayoutStateError(Exception):
    """The payout is not in a state that allows this decision."""


def approve_payout(payout, *, by, now=None):
    """REQUESTED -> APPROVED, recording who approved it and when."""
    now = now or timezone.now()
    updated = Payout.objects.filter(pk=payout.pk, status=Status.REQUESTED).update(
        status=Status.APPROVED, approved_at=now, approved_by=by
    )
    if not updated:
        raise _state_error(payout, "approved", allowed=(Status.REQUESTED,))
    payout.status, payout.approved_at, payout.approved_by = Status.APPROVED, now, by
    return payout


def reject_payout(payout, *, by, reason, now=None):
    """REQUESTED or APPROVED -> REJECTED, with the reason staff gave."""
    now = now or timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("A reason is required to reject a payout.")
    allowed = (Status.REQUESTED, Status.APPROVED)
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
    return payout


def _state_error(payout, verb, *, allowed):
    current = Payout.objects.filter(pk=payout.pk).values_list("status", flat=True).first()
    if current is None:
        return PayoutStateError(f"Payout #{payout.pk} no longer exists.")
    return PayoutStateError(
        f"Payout #{payout.pk} is {current}; only {' or '.join(allowed)} payouts can be {verb}."
    )
