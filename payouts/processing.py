"""process-payouts: pay the payouts staff approved on Stripe, and settle those in flight.

A payout is paid at most once. It is claimed first (a conditional UPDATE from APPROVED to
PROCESSING that one worker wins, storing its idempotency key), then created on Stripe
with that key, then its Stripe id is recorded. No transaction is held across the Stripe
call. If the process dies between Stripe and the database, the next run re-sends with the
same key and Stripe replays the payout it already made.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from cronlogs import logger
from cronlogs.models import Log
from payouts import stripe_client
from payouts.models import Payout
from payouts.money import format_amount, to_minor_units
from payouts.planning import plan_payouts, skip_reason
from payouts.stripe_client import StripeError

Status = Payout.Status
# Stripe may prune an idempotency key once it is 24 hours old; past that a re-send could
# pay a second time, so an unconfirmed claim that old goes to staff instead.
CLAIM_EXPIRY = timedelta(hours=24)
# Lists in the run's stats (errors, skipped payouts) stop growing here; counts stay exact.
MAX_LISTED = 100


@dataclass(frozen=True)
class Outcome:
    """What happened to one payout: sent, paid, failed, skipped, retrying, flagged, pending
    (still in transit at Stripe) or lost (another worker claimed it first)."""

    kind: str
    reason: str = ""


def process_payouts(*, now, dry_run, stats):
    """Re-send claimed payouts Stripe never confirmed (within 24 h, same key), settle
    PROCESSING payouts from Stripe's status, then pay APPROVED payouts oldest first."""
    if dry_run:
        plan_payouts(now=now, stats=stats)
        return
    stripe_client.require_configured()
    init_stats(stats)
    resume_unconfirmed_payouts(now=now, stats=stats)
    settle_processing_payouts(now=now, stats=stats)
    pay_approved_payouts(now=now, stats=stats)


def pay_approved_payouts(*, payout_ids=None, now=None, dry_run=False, stats=None):
    """Pay APPROVED payouts (all, or those in `payout_ids`), oldest approval first, and
    return the stats. Safe to run while another worker pays the same payouts."""
    now = now or timezone.now()
    stats = {} if stats is None else stats
    if dry_run:
        return plan_payouts(payout_ids=payout_ids, now=now, stats=stats)
    stripe_client.require_configured()
    init_stats(stats)
    payouts = Payout.objects.filter(status=Status.APPROVED).select_related("creator")
    if payout_ids is not None:
        payouts = payouts.filter(pk__in=list(payout_ids))
    accounts = {}
    for payout in payouts.order_by("approved_at", "pk"):
        count(stats, payout, pay_payout(payout, now=now, accounts=accounts))
    return stats


def pay_payout(payout, *, now, accounts):
    """Skip, fail or claim-and-send one APPROVED payout."""
    creator = payout.creator
    try:
        reason = skip_reason(creator, accounts)
        if reason:
            return Outcome("skipped", reason)
        amount = to_minor_units(payout.amount, payout.currency)
        if amount <= 0:
            raise ValueError(f"A payout must be more than zero, not {payout.amount}")
        available = stripe_client.retrieve_balance(creator.stripe_account_id)
    except ValueError as exc:
        return fail_payout(payout, str(exc), from_status=Status.APPROVED, now=now)
    except StripeError as exc:
        if exc.kind == "authentication":
            raise
        # Nothing was claimed: the payout stays APPROVED for the next run.
        logger.log_payout_error(payout.pk, creator.pk, exc, payout_context(payout))
        return Outcome("skipped", exc.message)
    if available.get(payout.currency.upper(), 0) < amount:
        return fail_payout(payout, "Insufficient balance", from_status=Status.APPROVED, now=now)
    if not claim_payout(payout, now=now):
        return Outcome("lost")
    return send_payout(payout, now=now)


def payout_idempotency_key(payout):
    return f"callastar-payout-{payout.pk}"


def claim_payout(payout, *, now):
    """Move an APPROVED payout to PROCESSING with its idempotency key. True if this
    worker won the claim; False if another one did (or the payout changed state)."""
    key = payout.idempotency_key or payout_idempotency_key(payout)
    won = Payout.objects.filter(pk=payout.pk, status=Status.APPROVED).update(
        status=Status.PROCESSING, claimed_at=now, idempotency_key=key
    )
    if won:
        payout.status, payout.claimed_at, payout.idempotency_key = Status.PROCESSING, now, key
    return bool(won)


def send_payout(payout, *, now):
    """Create the claimed payout on Stripe with its stored key and record Stripe's id."""
    creator = payout.creator
    try:
        created = stripe_client.create_payout(
            account_id=creator.stripe_account_id,
            amount=to_minor_units(payout.amount, payout.currency),
            currency=payout.currency,
            idempotency_key=payout.idempotency_key,
            metadata={"payoutId": payout.pk, "creatorId": creator.pk},
        )
    except StripeError as exc:
        if exc.kind == "authentication":
            raise
        if exc.declined:
            # Stripe refused the request, so nothing was created; a retry would replay it.
            reason = "Insufficient balance" if exc.insufficient_balance else exc.detail
            return fail_payout(payout, reason, from_status=Status.PROCESSING, now=now, error=exc)
        if exc.kind == "conflict":
            return flag_for_staff(payout, exc.message, now=now)
        # The outcome is unknown: keep the claim and its key; the next run re-sends it.
        logger.log_payout_error(
            payout.pk, creator.pk, exc, {**payout_context(payout), "willRetry": True}
        )
        return Outcome("retrying", exc.message)
    record_stripe_payout(payout, created.id)
    logger.log_payout_success(
        payout.pk,
        creator.pk,
        {**payout_context(payout), "event": "created", "stripeStatus": created.status},
    )
    return Outcome("sent")


def record_stripe_payout(payout, stripe_payout_id):
    """Store Stripe's id on the claimed payout (first writer wins; a replay is a no-op)."""
    Payout.objects.filter(
        pk=payout.pk, status=Status.PROCESSING, stripe_payout_id__isnull=True
    ).update(stripe_payout_id=stripe_payout_id)
    payout.stripe_payout_id = stripe_payout_id


def fail_payout(payout, reason, *, from_status, now, error=None):
    won = Payout.objects.filter(pk=payout.pk, status=from_status).update(
        status=Status.FAILED, failed_at=now, failure_reason=reason
    )
    if not won:
        return Outcome("lost")
    payout.status, payout.failed_at, payout.failure_reason = Status.FAILED, now, reason
    logger.log_payout_error(
        payout.pk, payout.creator_id, error or reason, {**payout_context(payout), "reason": reason}
    )
    return Outcome("failed", reason)


def flag_for_staff(payout, problem, *, now):
    """Mark a payout the jobs must not touch again and tell staff with a CRITICAL row."""
    if not Payout.objects.filter(pk=payout.pk, flagged_at__isnull=True).update(flagged_at=now):
        return Outcome("lost")
    payout.flagged_at = now
    logger.log_payout_error(
        payout.pk,
        payout.creator_id,
        problem,
        {**payout_context(payout), "needsReview": True},
        level=Log.Level.CRITICAL,
    )
    return Outcome("flagged", problem)


def resume_unconfirmed_payouts(*, now, stats):
    """PROCESSING payouts with no Stripe id: re-send with the same key while Stripe still
    remembers it (claimed < 24 h ago), otherwise flag them for staff."""
    unconfirmed = Payout.objects.filter(
        status=Status.PROCESSING, stripe_payout_id__isnull=True, flagged_at__isnull=True
    ).select_related("creator")
    for payout in unconfirmed.order_by("claimed_at", "pk"):
        if payout.idempotency_key and payout.claimed_at and now - payout.claimed_at < CLAIM_EXPIRY:
            outcome = send_payout(payout, now=now)
        else:
            outcome = flag_for_staff(
                payout,
                f"Claimed at {payout.claimed_at} with idempotency key {payout.idempotency_key} "
                "but no Stripe payout was ever recorded. Stripe may have forgotten the key, so "
                "it is not re-sent: look for it on the connected account (metadata payoutId) "
                "and set this payout's status by hand.",
                now=now,
            )
        count(stats, payout, outcome)


def settle_processing_payouts(*, now, stats):
    """PROCESSING payouts Stripe knows: paid -> PAID, failed/canceled -> FAILED.
    A flagged payout is settled too once staff have entered the Stripe id they found."""
    in_flight = Payout.objects.filter(
        status=Status.PROCESSING, stripe_payout_id__isnull=False
    ).select_related("creator")
    for payout in in_flight.order_by("claimed_at", "pk"):
        try:
            remote = stripe_client.retrieve_payout(
                payout.stripe_payout_id, account_id=payout.creator.stripe_account_id
            )
        except StripeError as exc:
            if exc.kind == "authentication":
                raise
            logger.log_payout_error(payout.pk, payout.creator_id, exc, payout_context(payout))
            count(stats, payout, Outcome("retrying", exc.message))
            continue
        count(stats, payout, settle_payout(payout, remote, now=now))


def settle_payout(payout, remote, *, now):
    if remote.status == "paid":
        won = Payout.objects.filter(pk=payout.pk, status=Status.PROCESSING).update(
            status=Status.PAID, paid_at=now
        )
        if not won:
            return Outcome("lost")
        payout.status, payout.paid_at = Status.PAID, now
        logger.log_payout_success(
            payout.pk, payout.creator_id, {**payout_context(payout), "event": "paid"}
        )
        return Outcome("paid")
    if remote.status in ("failed", "canceled"):
        reason = remote.failure_message or f"Stripe reports the payout {remote.status}"
        if remote.failure_code:
            reason = f"{reason} ({remote.failure_code})"
        return fail_payout(payout, reason, from_status=Status.PROCESSING, now=now)
    return Outcome("pending")


def payout_context(payout):
    return {
        "amount": format_amount(payout.amount),
        "currency": payout.currency,
        "automatic": payout.automatic,
        "status": payout.status,
        "idempotencyKey": payout.idempotency_key,
        "stripePayoutId": payout.stripe_payout_id,
    }


def init_stats(stats):
    for key in ("succeeded", "failed", "skipped", "paid", "retrying", "needsReview"):
        stats.setdefault(key, 0)
    stats.setdefault("errors", [])
    stats.setdefault("skippedPayouts", [])
    stats.setdefault("itemsProcessed", 0)
    return stats


STAT_FOR_OUTCOME = {
    "sent": "succeeded",
    "paid": "paid",
    "failed": "failed",
    "skipped": "skipped",
    "retrying": "retrying",
    "flagged": "needsReview",
}


def count(stats, payout, outcome):
    """Add one payout's outcome to the run's stats."""
    key = STAT_FOR_OUTCOME.get(outcome.kind)
    if key is None:  # "lost" or "pending": nothing was done to this payout by this run.
        return
    stats[key] += 1
    stats["itemsProcessed"] += 1
    entry = {"creatorId": payout.creator_id, "payoutId": payout.pk}
    if outcome.kind == "skipped":
        listed = stats["skippedPayouts"]
        entry["reason"] = outcome.reason
    elif outcome.kind in ("failed", "retrying", "flagged"):
        listed = stats["errors"]
        entry["error"] = outcome.reason
    else:
        return
    if len(listed) < MAX_LISTED:
        listed.append(entry)
