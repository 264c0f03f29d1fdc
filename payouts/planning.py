"""Which approved payouts can be paid, and what a dry run of process-payouts reports.

A dry run never creates anything and never writes to the database. With
STRIPE_SECRET_KEY set it reads (GET only) each creator's Stripe account and balance, so it
can tell a payout that would be paid from one that would be skipped or fail for lack of
balance. Without the key it makes the database checks only and says so in `note`.
"""

from decimal import Decimal

from payouts import stripe_client
from payouts.models import Payout
from payouts.money import format_amount, to_minor_units
from payouts.stripe_client import StripeError

MAX_LISTED = 100


def local_skip_reason(creator):
    """Why this creator cannot be paid, from our own data alone, or ""."""
    if creator.is_payout_blocked:
        detail = f": {creator.payout_block_reason}" if creator.payout_block_reason else ""
        return f"Creator payouts are blocked{detail}"
    if not (creator.is_stripe_onboarded and creator.stripe_account_id):
        return "Creator has no onboarded Stripe account"
    return ""


def skip_reason(creator, accounts):
    """Why this creator cannot be paid now, or "". Asks Stripe about the account once per
    creator per run (`accounts` is the run's cache)."""
    reason = local_skip_reason(creator)
    if reason:
        return reason
    if creator.stripe_account_id not in accounts:
        accounts[creator.stripe_account_id] = stripe_client.retrieve_account(
            creator.stripe_account_id
        )
    if not accounts[creator.stripe_account_id].payouts_enabled:
        return "Stripe reports payouts are not enabled for this account"
    return ""


def plan_payouts(*, payout_ids=None, now, stats):
    """Fill `stats` with the payouts a real run would pay, skip and fail."""
    check_stripe = stripe_client.is_configured()
    would = {"wouldPay": [], "wouldSkip": [], "wouldFail": []}
    stats.update(would, stripeChecked=check_stripe, itemsProcessed=0)
    stats["wouldSettle"] = Payout.objects.filter(status=Payout.Status.PROCESSING).count()
    if not check_stripe:
        stats["note"] = (
            "STRIPE_SECRET_KEY is not set: Stripe's payouts-enabled and balance checks "
            "were not made"
        )
    payouts = Payout.objects.filter(status=Payout.Status.APPROVED).select_related("creator")
    if payout_ids is not None:
        payouts = payouts.filter(pk__in=list(payout_ids))
    accounts, balances, totals = {}, {}, {}
    for payout in payouts.order_by("approved_at", "pk"):
        outcome, reason = _plan_one(payout, check_stripe, accounts, balances)
        entry = {
            "payoutId": payout.pk,
            "creatorId": payout.creator_id,
            "amount": format_amount(payout.amount),
            "currency": payout.currency,
        }
        if reason:
            entry["reason"] = reason
        key = {"pay": "wouldPay", "skip": "wouldSkip", "fail": "wouldFail"}[outcome]
        if len(stats[key]) < MAX_LISTED:
            stats[key].append(entry)
        stats[f"{key}Count"] = stats.get(f"{key}Count", 0) + 1
        if outcome == "pay":
            stats["itemsProcessed"] += 1
            totals[payout.currency] = totals.get(payout.currency, Decimal(0)) + payout.amount
    stats["wouldPayAmountByCurrency"] = {cur: format_amount(total) for cur, total in totals.items()}
    return stats


def _plan_one(payout, check_stripe, accounts, balances):
    creator = payout.creator
    try:
        amount = to_minor_units(payout.amount, payout.currency)
        if not check_stripe:
            reason = local_skip_reason(creator)
            return ("skip", reason) if reason else ("pay", "")
        reason = skip_reason(creator, accounts)
        if reason:
            return "skip", reason
        account = creator.stripe_account_id
        if account not in balances:
            balances[account] = stripe_client.retrieve_balance(account)
    except ValueError as exc:
        return "fail", str(exc)
    except StripeError as exc:
        return "skip", exc.message
    available = balances[account].get(payout.currency.upper(), 0)
    if available < amount:
        return "fail", "Insufficient balance"
    # Later payouts of the same creator draw on what is left.
    balances[account][payout.currency.upper()] = available - amount
    return "pay", ""
