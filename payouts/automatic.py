"""process-automatic-payouts: pay out the available balance of creators on a schedule.

Each payout is a Payout row (automatic=True) created directly in PROCESSING, with an
idempotency key per creator and period (the UTC day for DAILY, the ISO week for WEEKLY)
that is unique in the database and sent to Stripe: one period can never pay twice, even
if two runs race. Sending, crash recovery and settlement are process-payouts' own code.
"""

from datetime import UTC, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Max, Q

from bookings.models import Creator
from cronlogs import logger
from payouts import stripe_client
from payouts.models import Payout
from payouts.money import format_amount, payable_amount
from payouts.processing import MAX_LISTED, Outcome, send_payout
from payouts.stripe_client import StripeError

Schedule = Creator.PayoutSchedule
DUE_AFTER = {Schedule.DAILY: timedelta(hours=24), Schedule.WEEKLY: timedelta(days=7)}
# Cron starts a few seconds early or late. Without this slack a daily payout made at
# 01:00:05 would not be due at 01:00:02 the next day and would slip to every other day.
SCHEDULE_SLACK = timedelta(minutes=5)
# A failed automatic payout does not hold back the next period; the period key still
# prevents a second attempt within the same period.
NOT_COUNTED = (Payout.Status.FAILED, Payout.Status.REJECTED, Payout.Status.CANCELED)


def process_automatic_payouts(*, now, dry_run, stats):
    """Creators on DAILY/WEEKLY schedules, not blocked, onboarded, whose last automatic
    payout is at least 24 h / 7 days old: pay out their whole available balance in their
    currency when Stripe allows payouts and it reaches their payout minimum."""
    if not dry_run:
        stripe_client.require_configured()
    check_stripe = stripe_client.is_configured()
    stats.update(totalCreators=0, skipped=0, failed=0, retrying=0, itemsProcessed=0)
    stats.update(totalAmount="0.00", totalAmountByCurrency={}, skippedCreators=[], errors=[])
    if dry_run:
        stats.update(stripeChecked=check_stripe, wouldPay=[])
        if not check_stripe:
            stats["note"] = "STRIPE_SECRET_KEY is not set: balances were not read"
    totals = {}
    for creator in due_creators(now=now):
        stats["totalCreators"] += 1
        if dry_run and not check_stripe:
            _list(stats["wouldPay"], _entry(creator, amount=None))
            continue
        outcome, amount, payout_id = pay_out_creator(creator, now=now, dry_run=dry_run)
        if outcome.kind in ("sent", "would-pay"):
            stats["itemsProcessed"] += 1
            totals[creator.currency.upper()] = totals.get(creator.currency.upper(), 0) + amount
            stats["totalAmount"] = format_amount(sum(totals.values(), Decimal(0)))
            stats["totalAmountByCurrency"] = {c: format_amount(t) for c, t in totals.items()}
            if dry_run:
                _list(stats["wouldPay"], _entry(creator, amount=amount))
        elif outcome.kind == "skipped":
            stats["skipped"] += 1
            _list(stats["skippedCreators"], {"creatorId": creator.pk, "reason": outcome.reason})
        else:
            # "retrying" stays PROCESSING with its key; process-payouts re-sends it.
            stats["retrying" if outcome.kind == "retrying" else "failed"] += 1
            error = {"creatorId": creator.pk, "payoutId": payout_id, "error": outcome.reason}
            _list(stats["errors"], error)


def pay_out_creator(creator, *, now, dry_run=False):
    """Pay one due creator's balance. Returns (Outcome, amount, payout id)."""
    try:
        amount, reason = payable_balance(creator)
    except StripeError as exc:
        if exc.kind == "authentication":
            raise
        logger.log_payout_error(None, creator.pk, exc, {"automatic": True})
        return Outcome("failed", exc.message), None, None
    if reason:
        return Outcome("skipped", reason), None, None
    if dry_run:
        return Outcome("would-pay"), amount, None
    payout = create_automatic_payout(creator, amount=amount, now=now)
    if payout is None:
        period = payout_period(creator, now)
        return Outcome("skipped", f"Already paid out for period {period}"), None, None
    return send_payout(payout, now=now), amount, payout.pk


def due_creators(*, now):
    """Creators whose schedule says an automatic payout is due at `now`."""
    last = Max(
        "payouts__approved_at",
        filter=Q(payouts__automatic=True) & ~Q(payouts__status__in=NOT_COUNTED),
    )
    due = Q(last_automatic_payout_at__isnull=True)
    for schedule, interval in DUE_AFTER.items():
        cutoff = now - interval + SCHEDULE_SLACK
        due |= Q(payout_schedule=schedule, last_automatic_payout_at__lte=cutoff)
    return (
        Creator.objects.filter(
            payout_schedule__in=list(DUE_AFTER),
            is_payout_blocked=False,
            is_stripe_onboarded=True,
            stripe_account_id__isnull=False,
        )
        .exclude(stripe_account_id="")
        .annotate(last_automatic_payout_at=last)
        .filter(due)
        .order_by("pk")
    )


def payable_balance(creator):
    """(amount, "") to pay out now, or (None, reason) to skip this creator."""
    account = stripe_client.retrieve_account(creator.stripe_account_id)
    if not account.payouts_enabled:
        return None, "Stripe reports payouts are not enabled for this account"
    currency = creator.currency.upper()
    available = stripe_client.retrieve_balance(creator.stripe_account_id).get(currency, 0)
    amount = payable_amount(available, currency) if available > 0 else Decimal(0)
    if amount <= 0:
        return None, f"No available balance in {currency}"
    if amount < creator.payout_minimum:
        return None, (
            f"Available balance {format_amount(amount)} {currency} is below the payout "
            f"minimum {format_amount(creator.payout_minimum)} {currency}"
        )
    return amount, ""


def payout_period(creator, now):
    moment = now.astimezone(UTC)
    if creator.payout_schedule == Schedule.DAILY:
        return moment.date().isoformat()
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def create_automatic_payout(creator, *, amount, now):
    """Insert this period's payout, already claimed; None if the period already has one."""
    period = payout_period(creator, now)
    try:
        with transaction.atomic():
            payout = Payout.objects.create(
                creator=creator,
                amount=amount,
                currency=creator.currency.upper(),
                status=Payout.Status.PROCESSING,
                automatic=True,
                approved_at=now,
                claimed_at=now,
                idempotency_key=f"callastar-auto-{creator.pk}-{period}",
                metadata={"schedule": creator.payout_schedule, "period": period},
            )
    except IntegrityError:
        return None
    payout.creator = creator
    return payout


def _entry(creator, *, amount):
    return {
        "creatorId": creator.pk,
        "currency": creator.currency.upper(),
        "amount": format_amount(amount) if amount is not None else None,
    }


def _list(items, entry):
    if len(items) < MAX_LISTED:
        items.append(entry)
