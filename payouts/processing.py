"""process-payouts: pay the payouts staff approved on Stripe, and settle those in flight.

A payout is paid at most once. It is claimed first (a conditional UPDATE from APPROVED to
PROCESSING that one worker wins, storing its idempotency key), then created on Stripe
with that key, then its Stripe id is recorded. No transaction is held across the Stripe
call. If the process dies between Stripe and the database, the next run re-sends with the
same key and Stripe replays the payout it already made.
"""

from contextlib import nullcontext
from datetime import timedelta
from functools import partial

from django.conf import settings

from cronlogs import logger
from cronlogs.locks import LockTimeout, named_lock
from cronlogs.models import Log
from payouts import stripe_client
from payouts.balances import AccountBook
from payouts.decisions import Action, Decision, creator_problem, decide_payout
from payouts.models import Payout
from payouts.money import format_amount, to_minor_units
from payouts.outcomes import (
    PAID,
    SENT,
    UNCHANGED,
    count,
    flagged,
    init_plan,
    init_stats,
    refused,
    report_decision,
    retrying,
    skipped,
    stripe_unreachable,
)
from payouts.stripe_client import StripeError
from payouts.workers import run_bounded

Status = Payout.Status
# Stripe may prune an idempotency key once it is 24 hours old; past that a re-send could
# pay a second time, so an unconfirmed claim that old goes to staff instead.
CLAIM_EXPIRY = timedelta(hours=24)
# How long a job waits for another job deciding on the same creator's balance.
CREATOR_LOCK_TIMEOUT_SECONDS = 120


def process_payouts(run):
    """Re-send claimed payouts Stripe never confirmed (within 24 h, same key), settle
    PROCESSING payouts from Stripe's status, then pay APPROVED payouts oldest first."""
    if run.dry_run:
        in_flight = Payout.objects.filter(status=Status.PROCESSING, flagged_at__isnull=True)
        run.stats["wouldSettle"] = in_flight.count()
        pay_approved_payouts(run)
        return
    stripe_client.require_configured()
    init_stats(run.stats)
    resume_unconfirmed_payouts(run)
    settle_processing_payouts(run)
    pay_approved_payouts(run)


def pay_approved_payouts(run, *, payout_ids=None):
    """Pay APPROVED payouts (all, or those in `payout_ids`), oldest approval first, with
    STRIPE_CONCURRENCY creators in flight; a dry run reports what would happen to each
    instead. Safe to run while another worker pays the same payouts."""
    ask_stripe = stripe_client.is_configured() if run.dry_run else True
    if run.dry_run:
        init_plan(run.stats, checked_with_stripe=ask_stripe)
    else:
        stripe_client.require_configured()
        init_stats(run.stats)
    payouts = Payout.objects.filter(status=Status.APPROVED, flagged_at__isnull=True)
    if payout_ids is not None:
        payouts = payouts.filter(pk__in=list(payout_ids))
    by_creator = {}
    for payout in payouts.select_related("creator").order_by("approved_at", "pk"):
        by_creator.setdefault(payout.creator_id, []).append(payout)
    tasks = [
        partial(pay_creator, creator_payouts, run=run, ask_stripe=ask_stripe)
        for creator_payouts in by_creator.values()
    ]
    for results in run_bounded(tasks, workers=settings.STRIPE_CONCURRENCY, run=run):
        for payout, result in results:
            if run.dry_run:
                report_decision(run, payout, result)
            else:
                count(run, payout, result)


def creator_balance_lock(creator):
    """Held while a job decides on a creator's balance and pays from it, so the two payout
    jobs never decide on the same balance at the same moment."""
    return named_lock(f"creator-balance:{creator.pk}", timeout=CREATOR_LOCK_TIMEOUT_SECONDS)


def pay_creator(payouts, *, run, ask_stripe=True):
    """Decide on, and in a real run pay, one creator's APPROVED payouts in order, reading
    the account and balance once; later payouts draw on what earlier ones left. Returns
    [(payout, Outcome)] — or [(payout, Decision)] in a dry run."""
    creator, book, results = payouts[0].creator, AccountBook(ask_stripe=ask_stripe), []
    try:
        with nullcontext() if run.dry_run else creator_balance_lock(creator):
            for payout in payouts:
                if results and run.time_is_up():
                    break  # The rest stays APPROVED for the next run.
                results.append((payout, _pay_one(payout, book, run=run)))
    except LockTimeout as exc:
        reason = f"{exc}: another job is paying this creator; the next run tries again"
        results += [(payout, stripe_unreachable(reason)) for payout in payouts[len(results) :]]
    return results


def _pay_one(payout, book, *, run):
    try:
        decision = decide_payout(
            payout, account=_account(book, payout), balance=_balance(book, payout)
        )
    except StripeError as exc:
        if exc.is_authentication:
            raise
        if run.dry_run:
            return Decision(Action.SKIP, str(exc))
        # Nothing was claimed: the payout stays APPROVED for the next run.
        logger.log_payout_error(payout.pk, payout.creator_id, exc, payout_context(payout))
        return stripe_unreachable(str(exc))
    if decision.pays:
        book.debit(payout.creator, payout.currency, decision.minor_units)
    return decision if run.dry_run else act_on(payout, decision, now=run.now)


def _account(book, payout):
    # Our own reasons first: a blocked creator's account is not even looked up.
    return None if creator_problem(payout.creator) else book.account(payout.creator)


def _balance(book, payout):
    if creator_problem(payout.creator):
        return None
    account = book.account(payout.creator)
    return None if account is None or not account.payouts_enabled else book.balance(payout.creator)


def act_on(payout, decision, *, now):
    """Carry out the decision on one APPROVED payout: skip it, fail it, or claim and send."""
    if decision.action == Action.SKIP:
        return skipped(decision.reason)
    if decision.action == Action.FAIL:
        return fail_payout(payout, decision.reason, from_status=Status.APPROVED, now=now)
    if not claim_payout(payout, now=now):
        return UNCHANGED
    return send_payout(payout, now=now)


def payout_idempotency_key(payout):
    return f"callastar-payout-{payout.pk}"


def claim_payout(payout, *, now):
    """Move an APPROVED payout to PROCESSING with its idempotency key. True if this
    worker won the claim; False if another one did (or the payout changed state)."""
    key = payout.idempotency_key or payout_idempotency_key(payout)
    won = Payout.objects.filter(
        pk=payout.pk, status=Status.APPROVED, flagged_at__isnull=True
    ).update(status=Status.PROCESSING, claimed_at=now, idempotency_key=key)
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
        if exc.is_authentication:
            raise
        if exc.idempotency_conflict:
            return flag_for_staff(payout, str(exc), now=now)
        if exc.declined and not exc.rejects_our_request:
            # Stripe refused the payout, so nothing was created; a retry would replay it.
            reason = "Insufficient balance" if exc.insufficient_balance else exc.message
            return fail_payout(payout, reason, from_status=Status.PROCESSING, now=now, error=exc)
        # The outcome is unknown, or Stripe could not take our request as written (a bug to
        # fix, not the payout's fault): keep the claim and its key; the next run re-sends
        # it, and it goes to staff if that keeps failing for 24 hours.
        logger.log_payout_error(
            payout.pk, creator.pk, exc, {**payout_context(payout), "willRetry": True}
        )
        return retrying(str(exc))
    if not record_stripe_payout(payout, created.id):
        # Money moved on Stripe while our row says otherwise (staff marked it failed, or
        # it holds another Stripe id): only a person can tell which is true.
        stored = Payout.objects.filter(pk=payout.pk).values("status", "stripe_payout_id").get()
        problem = (
            f"Stripe created payout {created.id} for it, but the payout is now "
            f"{stored['status']} with Stripe id {stored['stripe_payout_id'] or 'none'}"
        )
        tell_staff(payout, problem, {**payout_context(payout), "stripePayoutId": created.id})
        return flagged(problem)
    logger.log_payout_success(
        payout.pk,
        creator.pk,
        {**payout_context(payout), "event": "created", "stripeStatus": created.status},
    )
    return SENT


def record_stripe_payout(payout, stripe_payout_id):
    """Store Stripe's id on the claimed payout. True if the row holds that id now (stored
    here, or by an earlier replay of the same creation); False if the row left PROCESSING
    or holds another id."""
    stored = Payout.objects.filter(
        pk=payout.pk, status=Status.PROCESSING, stripe_payout_id__isnull=True
    ).update(stripe_payout_id=stripe_payout_id)
    if (
        not stored
        and not Payout.objects.filter(pk=payout.pk, stripe_payout_id=stripe_payout_id).exists()
    ):
        return False
    payout.stripe_payout_id = stripe_payout_id
    return True


def fail_payout(payout, reason, *, from_status, now, error=None):
    won = Payout.objects.filter(pk=payout.pk, status=from_status).update(
        status=Status.FAILED, failed_at=now, failure_reason=reason
    )
    if not won:
        return UNCHANGED
    payout.status, payout.failed_at, payout.failure_reason = Status.FAILED, now, reason
    logger.log_payout_error(
        payout.pk, payout.creator_id, error or reason, {**payout_context(payout), "reason": reason}
    )
    return refused(reason)


def flag_for_staff(payout, problem, *, now):
    """Mark a payout the jobs must not touch again and tell staff with a CRITICAL row."""
    if not Payout.objects.filter(pk=payout.pk, flagged_at__isnull=True).update(flagged_at=now):
        return UNCHANGED
    payout.flagged_at = now
    tell_staff(payout, problem, payout_context(payout))
    return flagged(problem)


def tell_staff(payout, problem, context):
    """A CRITICAL PAYOUT_ERROR row (`needsReview: true`): only a person can settle this."""
    logger.log_payout_error(
        payout.pk,
        payout.creator_id,
        problem,
        {**context, "needsReview": True},
        level=Log.Level.CRITICAL,
    )


def resume_unconfirmed_payouts(run):
    """PROCESSING payouts with no Stripe id: re-send with the same key while Stripe still
    remembers it (claimed < 24 h ago), otherwise — or when the creator has been blocked
    since — flag them for staff."""
    now = run.now
    unconfirmed = Payout.objects.filter(
        status=Status.PROCESSING, stripe_payout_id__isnull=True, flagged_at__isnull=True
    ).select_related("creator")
    for payout in unconfirmed.order_by("claimed_at", "pk"):
        run.check_time()
        if payout.creator.is_payout_blocked:
            # Blocked means blocked: never re-sent, even with the key that would replay it.
            outcome = flag_for_staff(
                payout,
                f"The creator's payouts were blocked after this payout was claimed at "
                f"{payout.claimed_at} with an unknown outcome; it is not re-sent. "
                "reconcile-payouts looks for it on the connected account, or staff settle "
                "it with the Stripe id they find, or mark it failed.",
                now=now,
            )
        elif (
            payout.idempotency_key and payout.claimed_at and now - payout.claimed_at < CLAIM_EXPIRY
        ):
            outcome = send_payout(payout, now=now)
        else:
            outcome = flag_for_staff(
                payout,
                f"Claimed at {payout.claimed_at} with idempotency key {payout.idempotency_key} "
                "but no Stripe payout was ever recorded. Stripe may have forgotten the key, so "
                "it is not re-sent: reconcile-payouts looks for it on the connected account "
                "(metadata payoutId), or staff settle it with the Stripe id they find, or mark "
                "it failed (admin actions).",
                now=now,
            )
        count(run, payout, outcome)


def settle_processing_payouts(run):
    """PROCESSING payouts Stripe knows: paid -> PAID, failed/canceled -> FAILED, with
    STRIPE_CONCURRENCY in flight. Flagged payouts are never touched: they leave their flag
    only through `payouts.flagged`."""
    in_flight = Payout.objects.filter(
        status=Status.PROCESSING, stripe_payout_id__isnull=False, flagged_at__isnull=True
    ).select_related("creator")
    tasks = [
        partial(_settle_one, payout, now=run.now)
        for payout in in_flight.order_by("claimed_at", "pk")
    ]
    for payout, outcome in run_bounded(tasks, workers=settings.STRIPE_CONCURRENCY, run=run):
        count(run, payout, outcome)


def _settle_one(payout, *, now):
    try:
        remote = stripe_client.retrieve_payout(
            payout.stripe_payout_id, account_id=payout.creator.stripe_account_id
        )
    except StripeError as exc:
        if exc.is_authentication:
            raise
        logger.log_payout_error(payout.pk, payout.creator_id, exc, payout_context(payout))
        return payout, retrying(str(exc))
    return payout, settle_payout(payout, remote, now=now)


def settle_payout(payout, remote, *, now):
    if remote.status == "paid":
        won = Payout.objects.filter(pk=payout.pk, status=Status.PROCESSING).update(
            status=Status.PAID, paid_at=now
        )
        if not won:
            return UNCHANGED
        payout.status, payout.paid_at = Status.PAID, now
        logger.log_payout_success(
            payout.pk, payout.creator_id, {**payout_context(payout), "event": "paid"}
        )
        return PAID
    if remote.status in ("failed", "canceled"):
        reason = remote.failure_message or f"Stripe reports the payout {remote.status}"
        if remote.failure_code:
            reason = f"{reason} ({remote.failure_code})"
        return fail_payout(payout, reason, from_status=Status.PROCESSING, now=now)
    return UNCHANGED


def payout_context(payout):
    return {
        "amount": format_amount(payout.amount),
        "currency": payout.currency,
        "automatic": payout.automatic,
        "status": payout.status,
        "idempotencyKey": payout.idempotency_key,
        "stripePayoutId": payout.stripe_payout_id,
    }
