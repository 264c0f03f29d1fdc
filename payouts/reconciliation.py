"""reconcile-payouts: match our payouts to the Stripe payouts of each connected account.

For every connected account with payouts in the last PAYOUT_RECONCILE_DAYS, the account's
Stripe payouts are listed (one request per page of 100, never one per payout) and matched
to ours by `metadata.payoutId`. `payouts.matching.plan_account` decides what each match
means — a pure function, shared by the real run (which acts) and the dry run (which
reports):

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

from datetime import timedelta

from django.conf import settings
from django.db.models import Case, F, Min, Q, When
from django.db.models.functions import Coalesce

from bookings.models import Creator
from cronlogs import logger
from cronlogs.models import Log
from cronlogs.work import ItemOutcome, append_capped
from payouts import stripe_client
from payouts.flagged import LIST_SLACK, fail_absent, record_found
from payouts.lifecycle import PayoutActionRefused
from payouts.matching import OurPayout, mismatch, plan_account
from payouts.models import Payout
from payouts.money import format_amount, from_minor_units
from payouts.processing import settle_payout
from payouts.stripe_client import StripeError

Status = Payout.Status
JOB = "reconcile-payouts"
UNCONFIRMED = Q(status=Status.PROCESSING, stripe_payout_id__isnull=True)
ACCOUNT_BATCH = 50
ID_BATCH = 2000
STATS = ("accountsChecked", "stripePayoutsSeen", "matched", "settled", "resolved", "mismatches")


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
