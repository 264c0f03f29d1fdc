"""process-automatic-payouts: pay out the available balance of creators on a schedule.

Each payout is a Payout row (automatic=True) created directly in PROCESSING, one per
currency of the balance, with an idempotency key per creator, period (the UTC day for
DAILY, the ISO week for WEEKLY) and currency that is unique in the database and sent to
Stripe: one period can never pay a currency twice, even if two runs race. A creator's
balance is decided on under the same per-creator lock as process-payouts takes, and less
what the creator's approved manual payouts will draw. Sending, crash recovery and
settlement are process-payouts' own code.
"""

from contextlib import nullcontext
from datetime import UTC, timedelta
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Q

from bookings.models import Creator
from cronlogs import logger
from cronlogs.locks import LockTimeout
from cronlogs.work import append_capped
from payouts import stripe_client
from payouts.balances import AccountBook
from payouts.decisions import Action, decide_automatic_payouts
from payouts.models import Payout
from payouts.money import format_amount, from_minor_units, to_minor_units
from payouts.outcomes import SENT, refused, skipped, stripe_unreachable
from payouts.processing import creator_balance_lock, send_payout
from payouts.stripe_client import StripeError
from payouts.workers import run_bounded

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
    payout is at least 24 h / 7 days old: pay out the available balance of each currency
    on their account, less what approved manual payouts will draw, when Stripe allows
    payouts and it reaches the minimum for that currency."""
    stats, dry_run = run.stats, run.dry_run
    if not dry_run:
        stripe_client.require_configured()
    ask_stripe = stripe_client.is_configured()
    stats.update(totalCreators=0, skipped=0, failed=0, retrying=0, itemsProcessed=0)
    stats.update(totalAmount="0.00", totalAmountByCurrency={}, skippedCreators=[], errors=[])
    if dry_run:
        stats.update(stripeChecked=ask_stripe, wouldPay=[])
        if not ask_stripe:
            stats["note"] = "STRIPE_SECRET_KEY is not set: balances were not read"
    totals = {}
    creators = list(due_creators(now=run.now))
    stats["totalCreators"] = len(creators)
    tasks = [
        partial(pay_out_creator, creator, run=run, ask_stripe=ask_stripe) for creator in creators
    ]
    for creator, results in run_bounded(tasks, workers=settings.STRIPE_CONCURRENCY, run=run):
        for currency, outcome, amount, payout_id in results:
            run.count(outcome.item, outcome.reason)
            _add_up(run, creator, currency, outcome, amount, payout_id, totals)


def _add_up(run, creator, currency, outcome, amount, payout_id, totals):
    stats = run.stats
    if outcome.stat == "succeeded":
        stats["itemsProcessed"] += 1
        if amount is not None:
            totals[currency] = totals.get(currency, Decimal(0)) + amount
            stats["totalAmount"] = format_amount(sum(totals.values(), Decimal(0)))
            stats["totalAmountByCurrency"] = {c: format_amount(t) for c, t in totals.items()}
        if run.dry_run:
            append_capped(stats["wouldPay"], _entry(creator, currency, amount=amount))
        shown = format_amount(amount) if amount is not None else "the balance"
        run.detail(
            f"creator {creator.pk}: {'would pay' if run.dry_run else 'paid'} {shown} {currency}"
        )
    elif outcome.stat == "skipped":
        stats["skipped"] += 1
        entry = {"creatorId": creator.pk, "currency": currency, "reason": outcome.reason}
        append_capped(stats["skippedCreators"], entry)
        run.detail(f"creator {creator.pk}: {currency} skipped: {outcome.reason}")
    elif outcome.stat is not None:
        # "retrying" stays PROCESSING with its key; process-payouts re-sends it.
        stats["retrying" if outcome.stat == "retrying" else "failed"] += 1
        error = {"creatorId": creator.pk, "payoutId": payout_id, "error": outcome.reason}
        append_capped(stats["errors"], error)
        run.detail(f"creator {creator.pk}: {currency} {outcome.stat}: {outcome.reason}")


def pay_out_creator(creator, *, run, ask_stripe=True):
    """Decide on one due creator's balance, currency by currency, and in a real run pay
    it — under the creator's balance lock, so process-payouts never decides on the same
    balance at the same moment. Returns (creator, [(currency, Outcome, amount, payout id)])."""
    own = creator.currency.upper()
    try:
        with nullcontext() if run.dry_run else creator_balance_lock(creator):
            return creator, _pay_out(creator, run=run, ask_stripe=ask_stripe)
    except LockTimeout as exc:
        reason = f"{exc}: another job is paying this creator; the next run tries again"
        return creator, [(own, stripe_unreachable(reason), None, None)]


def _pay_out(creator, *, run, ask_stripe):
    book = AccountBook(ask_stripe=ask_stripe)
    try:
        account = book.account(creator)
        balance = book.balance(creator) if account and account.payouts_enabled else None
    except StripeError as exc:
        if exc.is_authentication:
            raise
        if not run.dry_run:
            logger.log_payout_error(None, creator.pk, exc, {"automatic": True})
        return [(creator.currency.upper(), stripe_unreachable(str(exc)), None, None)]
    decisions = decide_automatic_payouts(
        creator,
        account=account,
        balance=balance,
        reserved=manual_payouts_due(creator),
        minimums=settings.PAYOUT_MINIMUMS,
    )
    return [_act(creator, choice.currency, choice.decision, run=run) for choice in decisions]


def _act(creator, currency, decision, *, run):
    if decision.action == Action.FAIL:
        return currency, refused(decision.reason), None, None
    if decision.action != Action.PAY:
        return currency, skipped(decision.reason), None, None
    amount = (
        None if decision.minor_units is None else from_minor_units(decision.minor_units, currency)
    )
    if run.dry_run:
        return currency, SENT, amount, None
    payout = create_automatic_payout(creator, amount=amount, currency=currency, now=run.now)
    if isinstance(payout, str):
        return currency, skipped(payout), None, None
    return currency, send_payout(payout, now=run.now), amount, payout.pk


def manual_payouts_due(creator):
    """What the creator's approved manual payouts, and the claimed ones Stripe has not
    confirmed, will still draw from the balance: minor units by currency."""
    due = Payout.objects.filter(creator=creator, automatic=False).filter(
        Q(status=Payout.Status.APPROVED)
        | Q(status=Payout.Status.PROCESSING, stripe_payout_id__isnull=True)
    )
    reserved = {}
    for currency, amount in due.values_list("currency", "amount"):
        code = currency.upper()
        try:
            reserved[code] = reserved.get(code, 0) + max(0, to_minor_units(amount, code))
        except ValueError:
            continue  # Not payable as it stands: the manual job fails it, it draws nothing.
    return reserved


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


def create_automatic_payout(creator, *, amount, currency, now):
    """Insert this period's payout of `currency`, already claimed. If the period already
    has one, return why instead (a string): paid, on its way, or declined and when the
    next attempt comes."""
    period = payout_period(creator, now)
    key = f"callastar-auto-{creator.pk}-{period}-{currency}"
    try:
        with transaction.atomic():
            payout = Payout.objects.create(
                creator=creator,
                amount=amount,
                currency=currency,
                status=Payout.Status.PROCESSING,
                automatic=True,
                approved_at=now,
                claimed_at=now,
                idempotency_key=key,
                metadata={"schedule": creator.payout_schedule, "period": period},
            )
    except IntegrityError:
        return _period_taken(creator, key, period, now)
    payout.creator = creator
    return payout


def _period_taken(creator, key, period, now):
    earlier = Payout.objects.filter(idempotency_key=key).first()
    if earlier is None:
        return f"Already paid out for period {period}"
    if earlier.status == Payout.Status.FAILED:
        return (
            f"The {period} payout #{earlier.pk} of {format_amount(earlier.amount)} "
            f"{earlier.currency} was declined ({earlier.failure_reason}); the next attempt "
            f"is in the next period, from {next_period_start(creator, now):%Y-%m-%d} UTC"
        )
    return f"Already paid out for period {period} (payout #{earlier.pk}, {earlier.status})"


def next_period_start(creator, now):
    today = now.astimezone(UTC).date()
    if creator.payout_schedule == Schedule.DAILY:
        return today + timedelta(days=1)
    return today + timedelta(days=7 - today.weekday())


def _entry(creator, currency, *, amount):
    return {
        "creatorId": creator.pk,
        "currency": currency,
        "amount": format_amount(amount) if amount is not None else None,
    }
