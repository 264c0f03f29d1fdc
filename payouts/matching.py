"""What one connected account's Stripe payouts mean for ours: a pure decision.

`plan_account` looks only at its arguments — the Stripe payouts listed on the account and
what we hold about the payouts they name — and returns a `Finding` per Stripe payout
carrying our metadata (and per unconfirmed payout of ours Stripe lacks). reconcile-payouts
acts on the findings; its dry run reports them; neither re-implements the rules.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from payouts import stripe_client
from payouts.flagged import stripe_payout_problem
from payouts.models import Payout
from payouts.money import format_amount, from_minor_units

Status = Payout.Status
# A flagged payout is failed as "never created" only when its claim is this old: well past
# Stripe's 24-hour idempotency window, so no retry of ours can still be creating it.
ABSENT_AFTER = timedelta(hours=48)
FINAL_STRIPE_STATUSES = ("paid", "failed", "canceled")


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
    findings, seen = [], {}
    for remote in remote_payouts:
        named = remote.metadata.get("payoutId")
        if named is None:
            continue  # Not one of ours: made in the dashboard, or on Stripe's own schedule.
        payout = known.get(int(named)) if named.isdigit() else None
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
    contradiction = status_contradiction(payout, remote)
    if contradiction:
        return mismatch("status", contradiction, remote=remote, payout=payout)
    return Finding("match", payout=payout, remote=remote)


def status_contradiction(payout, remote):
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
