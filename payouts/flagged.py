"""How a payout Stripe never confirmed leaves PROCESSING: only with proof from Stripe.

A payout is flagged (`flagged_at`) when its claim is older than Stripe's idempotency
window with no Stripe payout recorded; the payout jobs leave it alone from then on,
because re-sending it might pay twice. It moves on only through a check against the
creator's connected account:

- found — a Stripe payout whose amount, currency and `metadata.payoutId` match: it is
  recorded as this payout's Stripe payout, the flag is cleared, and the payout follows
  Stripe's status (paid -> PAID, failed/canceled -> FAILED, else PROCESSING until the
  webhook or the next poll settles it);
- absent — no payout on the account carries its `payoutId`: FAILED ("never created on
  Stripe"), so the creator can ask again.

Staff do it from the admin ("Settle with Stripe id", "Mark failed"); reconcile-payouts
does it on its own when it can prove it. Both record who did it.
"""

from contextlib import contextmanager
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from cronlogs import logger
from payouts import audit, stripe_client
from payouts.lifecycle import PayoutActionRefused
from payouts.models import Payout
from payouts.money import format_amount, from_minor_units, normalize_currency, to_minor_units
from payouts.processing import payout_context, settle_payout
from payouts.stripe_client import StripeError

Status = Payout.Status
NEVER_CREATED = "Never created on Stripe"
# Our clock and Stripe's may disagree a little; list from a bit before the claim.
LIST_SLACK = timedelta(hours=1)


def stripe_payout_problem(payout, remote):
    """Why the Stripe payout `remote` is not `payout`, or "": its metadata.payoutId, amount
    and currency must all be ours."""
    problems = []
    if remote.metadata.get("payoutId") != str(payout.pk):
        found = remote.metadata.get("payoutId")
        problems.append(
            f"its metadata payoutId is {found!r}, not {str(payout.pk)!r}"
            if found
            else "it has no payoutId in its metadata"
        )
    currency = normalize_currency(payout.currency)
    if remote.currency != currency:
        problems.append(f"its currency is {remote.currency}, not {currency}")
    else:
        try:
            expected = to_minor_units(payout.amount, currency)
        except ValueError as exc:
            expected = None
            problems.append(str(exc))
        if expected is not None and remote.amount != expected:
            problems.append(
                f"its amount is {format_amount(from_minor_units(remote.amount, currency))} "
                f"{currency}, not {format_amount(payout.amount)} {currency}"
            )
    return "; ".join(problems)


def listing_start(payout):
    """From when a list of the account's payouts must start to hold this payout, if it
    was ever created: Stripe creates it after we claim it."""
    claimed = payout.claimed_at or payout.approved_at or payout.requested_at
    return claimed - LIST_SLACK


def find_on_stripe(payout):
    """The Stripe payouts on the creator's account whose metadata names this payout."""
    remote = stripe_client.list_payouts(
        payout.creator.stripe_account_id, created_gte=listing_start(payout)
    )
    return [p for p in remote if p.metadata.get("payoutId") == str(payout.pk)]


def _resolution(payout, *, by, now, outcome):
    metadata = {
        **(payout.metadata or {}),
        "resolvedBy": by,
        "resolvedAt": now.isoformat(),
        "resolution": outcome,
    }
    if payout.flagged_at:
        metadata["flaggedAt"] = payout.flagged_at.isoformat()
    return metadata


def record_found(payout, remote, *, now, by):
    """Record `remote` (checked to match) as the Stripe payout of a PROCESSING payout that
    has none recorded, clearing its flag, then settle it from Stripe's status. `by` names
    who proved it (a staff email, or the job). Returns the settlement's Outcome, or None
    if the payout moved on meanwhile."""
    metadata = _resolution(payout, by=by, now=now, outcome=f"found on Stripe as {remote.id}")
    try:
        with transaction.atomic():
            won = Payout.objects.filter(
                pk=payout.pk, status=Status.PROCESSING, stripe_payout_id__isnull=True
            ).update(stripe_payout_id=remote.id, flagged_at=None, metadata=metadata)
    except IntegrityError:
        raise PayoutActionRefused(
            f"Stripe payout {remote.id} is already recorded on another payout."
        ) from None
    if not won:
        return None
    payout.stripe_payout_id, payout.flagged_at, payout.metadata = remote.id, None, metadata
    logger.log_payout_success(
        payout.pk,
        payout.creator_id,
        {
            **payout_context(payout),
            "event": "recorded",
            "stripeStatus": remote.status,
            "resolvedBy": by,
        },
    )
    return settle_payout(payout, remote, now=now)


def fail_absent(payout, *, now, by, reason=NEVER_CREATED):
    """FAILED for a flagged payout no Stripe payout exists for (the caller looked)."""
    metadata = _resolution(payout, by=by, now=now, outcome=reason)
    won = Payout.objects.filter(
        pk=payout.pk,
        status=Status.PROCESSING,
        flagged_at__isnull=False,
        stripe_payout_id__isnull=True,
    ).update(
        status=Status.FAILED,
        failed_at=now,
        failure_reason=reason,
        flagged_at=None,
        metadata=metadata,
    )
    if not won:
        return False
    payout.status, payout.failed_at, payout.failure_reason = Status.FAILED, now, reason
    payout.flagged_at, payout.metadata = None, metadata
    logger.log_payout_error(
        payout.pk,
        payout.creator_id,
        reason,
        {**payout_context(payout), "reason": reason, "resolvedBy": by},
    )
    return True


def _require_flagged(payout):
    stored = Payout.objects.select_related("creator").get(pk=payout.pk)
    if stored.flagged_at is None or stored.status != Status.PROCESSING:
        raise PayoutActionRefused(
            f"Payout #{payout.pk} is not flagged for staff ({stored.status}); only flagged "
            "payouts are settled or failed by hand."
        )
    if stored.stripe_payout_id:
        raise PayoutActionRefused(
            f"Payout #{payout.pk} already has Stripe payout {stored.stripe_payout_id} recorded."
        )
    if not stored.creator.stripe_account_id:
        raise PayoutActionRefused(f"Payout #{payout.pk}'s creator has no Stripe account.")
    return stored


@contextmanager
def _asking_stripe(payout):
    """Stripe failing to answer refuses the action, saying why; nothing changed."""
    try:
        yield
    except StripeError as exc:
        raise PayoutActionRefused(
            f"Payout #{payout.pk}: Stripe could not be asked, nothing changed: {exc}"
        ) from None


def settle_flagged_payout(payout, stripe_payout_id, *, by, now=None):
    """Staff found the payout on Stripe: retrieve `stripe_payout_id` on the creator's
    connected account, accept it only if it matches, record it and follow its status."""
    now = now or timezone.now()
    payout = _require_flagged(payout)
    stripe_payout_id = (stripe_payout_id or "").strip()
    account = payout.creator.stripe_account_id
    with _asking_stripe(payout):
        try:
            remote = stripe_client.retrieve_payout(stripe_payout_id, account_id=account)
        except StripeError as exc:
            if exc.kind != "not_found":
                raise
            raise PayoutActionRefused(
                f"Stripe has no payout {stripe_payout_id} on account {account}."
            ) from None
    problem = stripe_payout_problem(payout, remote)
    if problem:
        raise PayoutActionRefused(
            f"Stripe payout {stripe_payout_id} is not payout #{payout.pk}: {problem}. "
            "Nothing changed."
        )
    before = audit.snapshot(payout)
    if record_found(payout, remote, now=now, by=by.email) is None:
        raise PayoutActionRefused(f"Payout #{payout.pk} moved on meanwhile; nothing changed.")
    payout.refresh_from_db()
    audit.record_action(
        payout, by=by, action="settle", before=before, note=f"Stripe says {remote.status}"
    )
    return payout, remote


def mark_flagged_payout_failed(payout, *, by, now=None):
    """Staff checked: FAILED, but only if no payout on the creator's connected account
    carries this payout's id (a Stripe list call proves it)."""
    now = now or timezone.now()
    payout = _require_flagged(payout)
    with _asking_stripe(payout):
        found = find_on_stripe(payout)
    if found:
        ids = ", ".join(f"{p.id} ({p.status})" for p in found)
        raise PayoutActionRefused(
            f"Payout #{payout.pk} exists on Stripe: {ids}. Use “Settle with Stripe id” instead."
        )
    before = audit.snapshot(payout)
    reason = f"{NEVER_CREATED} (checked by {by.email})"
    if not fail_absent(payout, now=now, by=by.email, reason=reason):
        raise PayoutActionRefused(f"Payout #{payout.pk} moved on meanwhile; nothing changed.")
    audit.record_action(payout, by=by, action="mark_failed", before=before)
    return payout
