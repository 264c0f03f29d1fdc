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
from cronlogs.work import append_capped
from payouts import stripe_client
from payouts.balances import AccountBook
from payouts.decisions import Action, decide_automatic_payout
from payouts.models import Payout
from payouts.money import format_amount, from_minor_units
from payouts.processing import SENT, refused, send_payout, skipped, stripe_unreachable
from payouts.stripe_client import StripeError

Schedule = Creator.PayoutSchedule
DUE_AFTER = {Schedule.DAILY: timedelta(hours=24), Schedule.WEEKLY: timedelta(days=7)}
# Cron starts a few seconds early or late. Without this slack a daily payout made at
# 01:00:05 would not be due at 01:00:02 the next day and would slip to every other day.
SCHEDULE_SLACK = timedelta(minutes=5)
# A failed automatic payout does not hold back the next period; the period key still
# prevents a second attempt within the same period.
NOT_COUNTED = (Payout.Status.FAILED, Payout.Status.REJECTED, Payout.Status.CANCELED)


def process_automatic_payouts(run):
    """Creators on DAILY/WEEKLY schedules, not blocked, onboarded, whose last automatic
    payout is at least 24 h / 7 days old: pay out their whole available balance in their
    currency when Stripe allows payouts and it reaches their payout minimum."""
    stats, now, dry_run = run.stats, run.now, run.dry_run
    if not dry_run:
        stripe_client.require_configured()
    book = AccountBook(ask_stripe=stripe_client.is_configured())
    stats.update(totalCreators=0, skipped=0, failed=0, retrying=0, itemsProcessed=0)
    stats.update(totalAmount="0.00", totalAmountByCurrency={}, skippedCreators=[], errors=[])
    if dry_run:
        stats.update(stripeChecked=book.ask_stripe, wouldPay=[])
        if not book.ask_stripe:
            stats["note"] = "STRIPE_SECRET_KEY is not set: balances were not read"
    totals = {}
    for creator in due_creators(now=now):
        run.check_time()
        stats["totalCreators"] += 1
        outcome, amount, payout_id = pay_out_creator(creator, book=book, run=run)
        run.count(outcome.item, outcome.reason)
        if outcome.stat == "succeeded":
            currency = creator.currency.upper()
            stats["itemsProcessed"] += 1
            if amount is not None:
                totals[currency] = totals.get(currency, Decimal(0)) + amount
                stats["totalAmount"] = format_amount(sum(totals.values(), Decimal(0)))
                stats["totalAmountByCurrency"] = {c: format_amount(t) for c, t in totals.items()}
            if dry_run:
                append_capped(stats["wouldPay"], _entry(creator, amount=amount))
            run.detail(
                f"creator {creator.pk}: {'would pay' if dry_run else 'paid'} "
                f"{format_amount(amount) if amount is not None else 'the balance'} {currency}"
            )
        elif outcome.stat == "skipped":
            stats["skipped"] += 1
            entry = {"creatorId": creator.pk, "reason": outcome.reason}
            append_capped(stats["skippedCreators"], entry)
            run.detail(f"creator {creator.pk}: skipped: {outcome.reason}")
        elif outcome.stat is not None:
            # "retrying" stays PROCESSING with its key; process-payouts re-sends it.
            stats["retrying" if outcome.stat == "retrying" else "failed"] += 1
            error = {"creatorId": creator.pk, "payoutId": payout_id, "error": outcome.reason}
            append_capped(stats["errors"], error)
            run.detail(f"creator {creator.pk}: {outcome.stat}: {outcome.reason}")


def pay_out_creator(creator, *, book, run):
    """Decide on one due creator's balance and, in a real run, pay it. Returns
    (Outcome, amount, payout id)."""
    try:
        account = book.account(creator)
        balance = book.balance(creator) if account and account.payouts_enabled else None
    except StripeError as exc:
        if exc.is_authentication:
            raise
        if not run.dry_run:
            logger.log_payout_error(None, creator.pk, exc, {"automatic": True})
        return stripe_unreachable(str(exc)), None, None
    decision = decide_automatic_payout(creator, account=account, balance=balance)
    if decision.action == Action.FAIL:
        return refused(decision.reason), None, None
    if decision.action != Action.PAY:
        return skipped(decision.reason), None, None
    amount = (
        None
        if decision.minor_units is None
        else from_minor_units(decision.minor_units, creator.currency)
    )
    if run.dry_run:
        return SENT, amount, None
    payout = create_automatic_payout(creator, amount=amount, now=run.now)
    if payout is None:
        period = payout_period(creator, run.now)
        return skipped(f"Already paid out for period {period}"), None, None
    return send_payout(payout, now=run.now), amount, payout.pk


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
