"""What happened to each payout of a run, and how the run's stats and tally add it up.

Shared by the payout jobs (process-payouts, process-automatic-payouts): a real run turns
each payout into an `Outcome`; a dry run reports the `Decision` it would act on.
"""

from dataclasses import dataclass
from decimal import Decimal

from cronlogs.work import ItemOutcome, append_capped
from payouts.decisions import Action
from payouts.money import format_amount


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
