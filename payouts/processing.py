"""process-payouts: pay the payouts staff approved on Stripe, and settle those in flight.

A payout is paid at most once. It is claimed first (a conditional UPDATE from APPROVED to
PROCESSING that one worker wins, storing its idempotency key), then created on Stripe
with that key, then its Stripe id is recorded. No transaction is held across the Stripe
call. If the process dies between Stripe and the database, the next run re-sends with the
same key and Stripe replays the payout it already made.
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from cronlogs import logger
from cronlogs.models import Log
from cronlogs.work import ItemOutcome, append_capped
from payouts import stripe_client
from payouts.balances import AccountBook
from payouts.decisions import Action, Decision, creator_problem, decide_payout
from payouts.models import Payout
from payouts.money import format_amount, to_minor_units
from payouts.stripe_client import StripeError

Status = Payout.Status
# Stripe may prune an idempotency key once it is 24 hours old; past that a re-send could
# pay a second time, so an unconfirmed claim that old goes to staff instead.
CLAIM_EXPIRY = timedelta(hours=24)


@dataclass(frozen=True)
class Outcome:
    """What happened to one payout: its `item` outcome for the run's tally, the counter of
    the run's stats it adds to (None: nothing was done to it), and why."""

    item: ItemOutcome
    stat: str | None = None
    reason: str = ""


SENT = Outcome(ItemOutcome.DONE, "succeeded")
PAID = Outcome(ItemOutcome.DONE, "paid")
# Still in transit at Stripe, or another worker claimed or settled it first.
UNCHANGED = Outcome(ItemOutcome.UNCHANGED)


def refused(reason):
    """The payout ended FAILED for its own reason (balance, declined, malformed)."""
    return Outcome(ItemOutcome.REFUSED, "failed", reason)


def skipped(reason):
    """Left APPROVED for a reason of the creator's own (blocked, not onboarded)."""
    return Outcome(ItemOutcome.SKIPPED, "skipped", reason)


def stripe_unreachable(reason):
    """Left APPROVED because Stripe could not be asked; the next run tries again."""
    return Outcome(ItemOutcome.FAILED, "skipped", reason)


def retrying(reason):
    """Claimed, but Stripe's answer never came: re-sent with the same key next run."""
    return Outcome(ItemOutcome.FAILED, "retrying", reason)


def flagged(reason):
    return Outcome(ItemOutcome.REFUSED, "needsReview", reason)


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
    """Pay APPROVED payouts (all, or those in `payout_ids`), oldest approval first; a dry
    run reports what would happen to each instead. Safe to run while another worker pays
    the same payouts."""
    if run.dry_run:
        book = AccountBook(ask_stripe=stripe_client.is_configured())
        init_plan(run.stats, checked_with_stripe=book.ask_stripe)
    else:
        stripe_client.require_configured()
        book = AccountBook()
        init_stats(run.stats)
    payouts = Payout.objects.filter(status=Status.APPROVED, flagged_at__isnull=True)
    payouts = payouts.select_related("creator")
    if payout_ids is not None:
        payouts = payouts.filter(pk__in=list(payout_ids))
    for payout in payouts.order_by("approved_at", "pk"):
        run.check_time()
        try:
            decision = decide_payout(
                payout, account=_account(book, payout), balance=_balance(book, payout)
            )
        except StripeError as exc:
            if exc.is_authentication:
                raise
            if run.dry_run:
                report_decision(run, payout, Decision(Action.SKIP, str(exc)))
                continue
            # Nothing was claimed: the payout stays APPROVED for the next run.
            logger.log_payout_error(payout.pk, payout.creator_id, exc, payout_context(payout))
            count(run, payout, stripe_unreachable(str(exc)))
            continue
        if decision.pays:
            book.debit(payout.creator, payout.currency, decision.minor_units)
        if run.dry_run:
            report_decision(run, payout, decision)
        else:
            count(run, payout, act_on(payout, decision, now=run.now))


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
        if exc.declined:
            # Stripe refused the request, so nothing was created; a retry would replay it.
            reason = "Insufficient balance" if exc.insufficient_balance else exc.message
            return fail_payout(payout, reason, from_status=Status.PROCESSING, now=now, error=exc)
        # The outcome is unknown: keep the claim and its key; the next run re-sends it.
        logger.log_payout_error(
            payout.pk, creator.pk, exc, {**payout_context(payout), "willRetry": True}
        )
        return retrying(str(exc))
    record_stripe_payout(payout, created.id)
    logger.log_payout_success(
        payout.pk,
        creator.pk,
        {**payout_context(payout), "event": "created", "stripeStatus": created.status},
    )
    return SENT


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
    logger.log_payout_error(
        payout.pk,
        payout.creator_id,
        problem,
        {**payout_context(payout), "needsReview": True},
        level=Log.Level.CRITICAL,
    )
    return flagged(problem)


def resume_unconfirmed_payouts(run):
    """PROCESSING payouts with no Stripe id: re-send with the same key while Stripe still
    remembers it (claimed < 24 h ago), otherwise flag them for staff."""
    now = run.now
    unconfirmed = Payout.objects.filter(
        status=Status.PROCESSING, stripe_payout_id__isnull=True, flagged_at__isnull=True
    ).select_related("creator")
    for payout in unconfirmed.order_by("claimed_at", "pk"):
        run.check_time()
        if payout.idempotency_key and payout.claimed_at and now - payout.claimed_at < CLAIM_EXPIRY:
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
    """PROCESSING payouts Stripe knows: paid -> PAID, failed/canceled -> FAILED. Flagged
    payouts are never touched: they leave their flag only through `payouts.flagged`."""
    in_flight = Payout.objects.filter(
        status=Status.PROCESSING, stripe_payout_id__isnull=False, flagged_at__isnull=True
    ).select_related("creator")
    for payout in in_flight.order_by("claimed_at", "pk"):
        run.check_time()
        try:
            remote = stripe_client.retrieve_payout(
                payout.stripe_payout_id, account_id=payout.creator.stripe_account_id
            )
        except StripeError as exc:
            if exc.is_authentication:
                raise
            logger.log_payout_error(payout.pk, payout.creator_id, exc, payout_context(payout))
            count(run, payout, retrying(str(exc)))
            continue
        count(run, payout, settle_payout(payout, remote, now=run.now))


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


def init_stats(stats):
    for key in ("succeeded", "failed", "skipped", "paid", "retrying", "needsReview"):
        stats.setdefault(key, 0)
    stats.setdefault("errors", [])
    stats.setdefault("skippedPayouts", [])
    stats.setdefault("itemsProcessed", 0)
    return stats


def count(run, payout, outcome):
    """Add one payout's outcome to the run's stats and tally."""
    run.count(outcome.item, outcome.reason)
    if outcome.stat is None:
        return
    stats = run.stats
    stats[outcome.stat] += 1
    stats["itemsProcessed"] += 1
    entry = {"creatorId": payout.creator_id, "payoutId": payout.pk}
    if outcome.stat == "skipped":
        append_capped(stats["skippedPayouts"], {**entry, "reason": outcome.reason})
    elif outcome.reason:
        append_capped(stats["errors"], {**entry, "error": outcome.reason})
    run.detail(
        f"payout #{payout.pk} (creator {payout.creator_id}): {outcome.stat}"
        + (f": {outcome.reason}" if outcome.reason else "")
    )


# --- dry runs: the same decisions, reported -------------------------------------------

PLAN_KEYS = {Action.PAY: "wouldPay", Action.SKIP: "wouldSkip", Action.FAIL: "wouldFail"}


def init_plan(stats, *, checked_with_stripe):
    stats.update(
        wouldPay=[], wouldSkip=[], wouldFail=[], stripeChecked=checked_with_stripe, itemsProcessed=0
    )
    stats.update({f"{key}Count": 0 for key in PLAN_KEYS.values()}, wouldPayAmountByCurrency={})
    if not checked_with_stripe:
        stats["note"] = (
            "STRIPE_SECRET_KEY is not set: Stripe's payouts-enabled and balance checks "
            "were not made"
        )


def report_decision(run, payout, decision):
    """What a dry run says about one payout: the decision the real run would act on."""
    stats, key = run.stats, PLAN_KEYS[decision.action]
    entry = {
        "payoutId": payout.pk,
        "creatorId": payout.creator_id,
        "amount": format_amount(payout.amount),
        "currency": payout.currency,
    }
    if decision.reason:
        entry["reason"] = decision.reason
    append_capped(stats[key], entry)
    stats[f"{key}Count"] += 1
    run.detail(
        f"payout #{payout.pk} (creator {payout.creator_id}, {entry['amount']} {payout.currency}):"
        f" would {decision.action}" + (f": {decision.reason}" if decision.reason else "")
    )
    if decision.pays:
        stats["itemsProcessed"] += 1
        totals = stats["wouldPayAmountByCurrency"]
        total = Decimal(totals.get(payout.currency, "0")) + payout.amount
        totals[payout.currency] = format_amount(total)
