"""reconcile-payouts: match our payouts to the Stripe payouts of each connected account.

For every connected account with payouts in the last PAYOUT_RECONCILE_DAYS, the account's
Stripe payouts are listed (one request per page of 100, never one per payout) and matched
to ours by `metadata.payoutId`. `plan_account` decides what each match means — a pure
function, shared by the real run (which acts) and the dry run (which reports):

- settle: a PROCESSING payout whose Stripe status moved (paid -> PAID, failed/canceled ->
  FAILED), as polling and the webhook would;
- record: a PROCESSING payout Stripe created but whose id we never stored (a crash
  between Stripe's answer and our write) is recorded, then settled;
- resolve: a flagged payout found on Stripe is recorded and follows Stripe's status; a
  flagged payout absent from Stripe whose claim is over 48 hours old is FAILED "never
  created on Stripe", so the creator can ask again (`payouts.flagged`);
- mismatch: a Stripe payout carrying our metadata that we do not know, or whose amount,
  currency or account differs from ours, a second Stripe payout for one of ours, or a
  status that contradicts ours (PAID here, failed there) — each a CRITICAL PAYOUT_ERROR
  with `mismatch` in its context, for staff.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Case, F, Min, Q, When
from django.db.models.functions import Coalesce

from bookings.models import Creator
from cronlogs import logger
from cronlogs.models import Log
from cronlogs.work import ItemOutcome, append_capped
from payouts import stripe_client
from payouts.flagged import LIST_SLACK, fail_absent, record_found, stripe_payout_problem
from payouts.lifecycle import PayoutActionRefused
from payouts.models import Payout
from payouts.money import format_amount, from_minor_units
from payouts.processing import settle_payout
from payouts.stripe_client import StripeError

Status = Payout.Status
JOB = "reconcile-payouts"
# A flagged payout is failed as "never created" only when its claim is this old: well past
# Stripe's 24-hour idempotency window, so no retry of ours can still be creating it.
ABSENT_AFTER = timedelta(hours=48)
FINAL_STRIPE_STATUSES = ("paid", "failed", "canceled")
UNCONFIRMED = Q(status=Status.PROCESSING, stripe_payout_id__isnull=True)
ACCOUNT_BATCH = 50
ID_BATCH = 2000
STATS = ("accountsChecked", "stripePayoutsSeen", "matched", "settled", "resolved", "mismatches")


@dataclass(frozen=True, slots=True)
class OurPayout:
    """What matching reads of one of our payouts: read as plain values, since building
    thousands of model instances would cost more than the rest of the job. The payouts
    acted on are loaded in full."""

    pk: int
    creator_id: int
    amount: Decimal
    currency: str
    status: str
    stripe_payout_id: str | None
    flagged_at: datetime | None
    # When it was claimed (else approved, else requested), for an unconfirmed payout only:
    # a proof of absence needs it, and loading thousands of datetimes is not free.
    claimed: datetime | None

    FIELDS = (
        "pk",
        "creator_id",
        "amount",
        "currency",
        "status",
        "stripe_payout_id",
        "flagged_at",
        "claimed",
    )


@dataclass(frozen=True)
class Finding:
    """What reconciliation makes of one Stripe payout, or of one of ours Stripe lacks."""

    action: str  # "match", "settle", "record", "resolve", "fail_absent", "wait", "mismatch"
    payout: OurPayout | None = None
    remote: stripe_client.StripePayout | None = None
    mismatch: str = ""  # unknown, amount, currency, account, duplicate, status
    detail: str = ""


def mismatch(kind, detail, *, remote, payout=None):
    return Finding("mismatch", payout=payout, remote=remote, mismatch=kind, detail=detail)


def plan_account(creator_id, account_id, remote_payouts, known, unconfirmed, *, now):
    """What to do about one account, the Stripe account `account_id` of creator
    `creator_id`. `remote_payouts` is every Stripe payout listed on it, `known` maps ids
    to our payouts (at least those the list names by metadata.payoutId), `unconfirmed` is
    our PROCESSING payouts of the creator with no Stripe id. Looks only at its arguments."""
    by_id = known
    findings, seen = [], {}
    for remote in remote_payouts:
        named = remote.metadata.get("payoutId")
        if named is None:
            continue  # Not one of ours: made in the dashboard, or on Stripe's own schedule.
        payout = by_id.get(int(named)) if named.isdigit() else None
        if payout is None:
            findings.append(
                mismatch(
                    "unknown",
                    f"Stripe payout {remote.id} ({_money(remote)}) on {account_id} names "
                    f"payoutId {named!r}, which we do not have",
                    remote=remote,
                )
            )
            continue
        findings.append(_match(creator_id, account_id, payout, remote, seen))
        seen.setdefault(payout.pk, remote.id)
    for payout in unconfirmed:
        if payout.pk in seen:
            continue
        if payout.flagged_at is None:
            continue  # Within its claim's window: process-payouts re-sends it with its key.
        action = "fail_absent" if now - payout.claimed >= ABSENT_AFTER else "wait"
        findings.append(Finding(action, payout=payout))
    return findings


def _match(creator_id, account_id, payout, remote, seen):
    if payout.creator_id != creator_id:
        return mismatch(
            "account",
            f"Stripe payout {remote.id} on {account_id} names payout #{payout.pk}, which is "
            f"creator {payout.creator_id}'s, not this account's",
            remote=remote,
            payout=payout,
        )
    problem = stripe_payout_problem(payout, remote)
    if problem:
        kind = "currency" if "currency" in problem else "amount"
        return mismatch(
            kind,
            f"Stripe payout {remote.id} for payout #{payout.pk}: {problem}",
            remote=remote,
            payout=payout,
        )
    recorded = payout.stripe_payout_id or seen.get(payout.pk)
    if recorded and recorded != remote.id:
        return mismatch(
            "duplicate",
            f"Payout #{payout.pk} has two Stripe payouts: {recorded} and {remote.id}",
            remote=remote,
            payout=payout,
        )
    if payout.status == Status.PROCESSING:
        if payout.flagged_at is not None:
            return Finding("resolve", payout=payout, remote=remote)
        if not payout.stripe_payout_id:
            return Finding("record", payout=payout, remote=remote)
        if remote.status in FINAL_STRIPE_STATUSES:
            return Finding("settle", payout=payout, remote=remote)
        return Finding("match", payout=payout, remote=remote)
    contradiction = _contradiction(payout, remote)
    if contradiction:
        return mismatch("status", contradiction, remote=remote, payout=payout)
    return Finding("match", payout=payout, remote=remote)


def _contradiction(payout, remote):
    """Why Stripe's status and ours cannot both be true, or ""."""
    ours, theirs = payout.status, remote.status
    if ours == Status.PAID and theirs in ("failed", "canceled"):
        return f"Payout #{payout.pk} is PAID but Stripe payout {remote.id} is {theirs}"
    if ours == Status.FAILED and theirs not in ("failed", "canceled"):
        return f"Payout #{payout.pk} is FAILED but Stripe payout {remote.id} is {theirs}"
    if ours in (Status.REQUESTED, Status.APPROVED, Status.REJECTED, Status.CANCELED):
        return f"Payout #{payout.pk} is {ours}, never sent, but Stripe has {remote.id} ({theirs})"
    return ""


def _money(remote):
    return f"{format_amount(from_minor_units(remote.amount, remote.currency))} {remote.currency}"


def accounts_to_check(*, now):
    """Each connected account with a payout claimed in the last PAYOUT_RECONCILE_DAYS or
    still PROCESSING, and from when to list its Stripe payouts: the window, stretched back
    to its oldest PROCESSING payout without a Stripe id so that proof of absence holds."""
    cutoff = now - timedelta(days=settings.PAYOUT_RECONCILE_DAYS)
    unconfirmed = Q(payouts__status=Status.PROCESSING, payouts__stripe_payout_id__isnull=True)
    claimed = Coalesce(
        F("payouts__claimed_at"), F("payouts__approved_at"), F("payouts__requested_at")
    )
    rows = (
        Creator.objects.filter(
            Q(payouts__claimed_at__gte=cutoff) | Q(payouts__status=Status.PROCESSING)
        )
        .exclude(stripe_account_id__isnull=True)
        .exclude(stripe_account_id="")
        .values("pk", "stripe_account_id")
        .annotate(oldest=Min(claimed, filter=unconfirmed))
        .order_by("stripe_account_id")
    )
    for row in rows:
        since = cutoff if row["oldest"] is None else min(cutoff, row["oldest"] - LIST_SLACK)
        yield row["pk"], row["stripe_account_id"], since


def our_payouts(listed):
    """What `plan_account` needs about a batch of listed accounts, `[(creator id, account
    id, since, Stripe payouts)]`: ({id: OurPayout} for every payout the lists name, {creator
    id: [its unconfirmed payouts]}).

    One query reads the batch's creators' payouts claimed since the earliest listing start,
    and their unconfirmed ones (on the creator index); the few payouts the lists name
    beyond those (older, or another creator's) come by primary key, ID_BATCH at a time."""
    creators = [creator_id for creator_id, _, _, _ in listed]
    since = min(start for _, _, start, _ in listed)
    known, by_creator = {}, {creator_id: [] for creator_id in creators}
    recent = Q(creator_id__in=creators) & (Q(claimed_at__gte=since) | UNCONFIRMED)
    _read(Payout.objects.filter(recent), known, by_creator)
    named = {
        int(value)
        for _, _, _, remote in listed
        for value in (p.metadata.get("payoutId") for p in remote)
        if value is not None and value.isdigit() and len(value) < 19
    }
    missing = sorted(named - known.keys())
    for start in range(0, len(missing), ID_BATCH):
        wanted = Payout.objects.filter(pk__in=missing[start : start + ID_BATCH])
        _read(wanted, known, by_creator)
    return known, by_creator


def _read(payouts, known, by_creator):
    claimed = Coalesce("claimed_at", "approved_at", "requested_at")
    rows = payouts.annotate(claimed=Case(When(UNCONFIRMED, then=claimed), default=None))
    for row in rows.values_list(*OurPayout.FIELDS):
        payout = OurPayout(*row)
        known[payout.pk] = payout
        if payout.status == Status.PROCESSING and not payout.stripe_payout_id:
            by_creator.setdefault(payout.creator_id, []).append(payout)


def batches(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def reconcile_payouts(run):
    """Every connected account with payouts claimed in the last PAYOUT_RECONCILE_DAYS (30)
    or still PROCESSING: list its Stripe payouts since then and match them to ours by
    metadata.payoutId — settle what moved, resolve flagged payouts Stripe proves, and
    report each mismatch as a CRITICAL PAYOUT_ERROR."""
    stats = run.stats
    stats.update(dict.fromkeys(STATS, 0), recorded=0, accountsFailed=0, itemsProcessed=0)
    stats.update(mismatchedPayouts=[], errors=[])
    ask_stripe = stripe_client.is_configured()
    if not run.dry_run:
        stripe_client.require_configured()
    if run.dry_run:
        stats.update(stripeChecked=ask_stripe, wouldSettle=[], wouldRecord=[], wouldResolve=[])
    accounts = list(accounts_to_check(now=run.now))
    if not ask_stripe:
        stats["accountsToCheck"] = len(accounts)
        stats["note"] = "STRIPE_SECRET_KEY is not set: Stripe's payouts were not listed"
        for _creator_id, account_id, since in accounts:
            run.detail(
                f"account {account_id}: would list its Stripe payouts since {since:%Y-%m-%d}"
            )
        return
    # Accounts go in batches so that our side costs one query per batch, not per account.
    for batch in batches(accounts, ACCOUNT_BATCH):
        listed = []
        for creator_id, account_id, since in batch:
            run.check_time()
            remote = list_account(run, account_id, since)
            if remote is not None:
                listed.append((creator_id, account_id, since, remote))
        known, unconfirmed = our_payouts(listed) if listed else ({}, {})
        for creator_id, account_id, _since, remote in listed:
            findings = plan_account(
                creator_id,
                account_id,
                remote,
                known,
                unconfirmed.get(creator_id, []),
                now=run.now,
            )
            for finding in findings:
                if run.dry_run:
                    report(run, account_id, finding)
                else:
                    act(run, account_id, finding)
            run.count(ItemOutcome.DONE)


def list_account(run, account_id, since):
    """The account's Stripe payouts since `since`, or None (counted) if Stripe failed."""
    stats = run.stats
    try:
        remote = stripe_client.list_payouts(account_id, created_gte=since)
    except StripeError as exc:
        if exc.is_authentication:
            raise
        stats["accountsFailed"] += 1
        append_capped(stats["errors"], {"accountId": account_id, "error": str(exc)})
        run.detail(f"account {account_id}: {exc}")
        run.count(ItemOutcome.FAILED if exc.retryable else ItemOutcome.REFUSED, exc)
        return None
    stats["accountsChecked"] += 1
    stats["stripePayoutsSeen"] += len(remote)
    stats["itemsProcessed"] += len(remote)
    return remote


def act(run, account_id, finding):
    """Carry out one finding of `plan_account` (a real run)."""
    stats, payout, remote = run.stats, finding.payout, finding.remote
    if finding.action == "mismatch":
        report_mismatch(run, account_id, finding)
        return
    if finding.action == "wait":
        run.detail(f"payout #{payout.pk}: flagged, not on Stripe yet; failed after 48 h")
        return
    if finding.action == "fail_absent":
        if fail_absent(_loaded(payout), now=run.now, by=JOB):
            stats["resolved"] += 1
            run.detail(f"payout #{payout.pk}: never created on Stripe: FAILED")
        return
    stats["matched"] += 1
    if finding.action == "match":
        return
    try:
        outcome = (
            record_found(_loaded(payout), remote, now=run.now, by=JOB)
            if finding.action in ("record", "resolve")
            else settle_payout(_loaded(payout), remote, now=run.now)
        )
    except PayoutActionRefused as exc:
        stats["matched"] -= 1
        report_mismatch(
            run, account_id, mismatch("duplicate", str(exc), remote=remote, payout=payout)
        )
        return
    if outcome is None:
        return  # It moved on meanwhile (the webhook or another run had it first).
    if finding.action == "resolve":
        stats["resolved"] += 1
    if finding.action == "record":
        stats["recorded"] += 1
    if outcome.stat in ("paid", "failed") and finding.action != "resolve":
        stats["settled"] += 1
    run.detail(f"payout #{payout.pk}: {finding.action} with {remote.id} ({remote.status})")


def _loaded(payout):
    return Payout.objects.select_related("creator").get(pk=payout.pk)


def report_mismatch(run, account_id, finding):
    stats, payout, remote = run.stats, finding.payout, finding.remote
    stats["mismatches"] += 1
    entry = {
        "accountId": account_id,
        "stripePayoutId": remote.id if remote else None,
        "payoutId": payout.pk if payout else None,
        "mismatch": finding.mismatch,
    }
    append_capped(stats["mismatchedPayouts"], entry)
    run.detail(f"MISMATCH ({finding.mismatch}): {finding.detail}")
    if run.dry_run:
        return
    logger.log_payout_error(
        payout.pk if payout else None,
        payout.creator_id if payout else None,
        finding.detail,
        {
            **entry,
            "stripeAmount": format_amount(from_minor_units(remote.amount, remote.currency)),
            "stripeCurrency": remote.currency,
            "stripeStatus": remote.status,
            "stripeMetadata": remote.metadata,
            **(
                {"amount": format_amount(payout.amount), "currency": payout.currency}
                if payout
                else {}
            ),
            "cronType": JOB,
        },
        level=Log.Level.CRITICAL,
    )


def report(run, account_id, finding):
    """What a dry run says about one finding: what the real run would do."""
    stats, payout, remote = run.stats, finding.payout, finding.remote
    if finding.action == "mismatch":
        report_mismatch(run, account_id, finding)
        return
    if finding.action == "wait":
        return
    if finding.action == "fail_absent":
        append_capped(stats["wouldResolve"], {"payoutId": payout.pk, "resolution": "FAILED"})
        run.detail(f"payout #{payout.pk}: would fail it, never created on Stripe")
        return
    stats["matched"] += 1
    entry = {"payoutId": payout.pk, "stripePayoutId": remote.id, "stripeStatus": remote.status}
    key = {"settle": "wouldSettle", "record": "wouldRecord", "resolve": "wouldResolve"}.get(
        finding.action
    )
    if key:
        append_capped(stats[key], entry)
        run.detail(
            f"payout #{payout.pk}: would {finding.action} with {remote.id} ({remote.status})"
        )
