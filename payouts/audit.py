"""The payout audit trail: one PAYOUT_AUDIT row in "Log" per staff action on a payout.

Every action staff take on a payout — create, edit while REQUESTED, approve, reject, pay
now, settle with a Stripe id, mark failed — writes one row naming who (`staffEmail`,
`staffUserId`), which payout (`payoutId`, `creatorId`), what (`action`) and the fields it
changed, before and after (`before`, `after`, `changedFields`). The payout's admin page
lists its rows; `SELECT * FROM "Log" WHERE type = 'PAYOUT_AUDIT'` reads them all.
"""

from cronlogs.logger import write_log
from cronlogs.models import ContextKey, Log
from payouts.models import Payout
from payouts.money import format_amount

ACTIONS = {
    "create": "Created",
    "edit": "Edited",
    "approve": "Approved",
    "reject": "Rejected",
    "pay_now": "Paid now",
    "settle": "Settled with a Stripe id",
    "mark_failed": "Marked failed",
    "delete": "Deleted",
}


def _iso(moment):
    return moment.isoformat() if moment else None


def snapshot(payout):
    """The fields an audit row compares, as JSON values with camelCase keys."""
    return {
        "status": payout.status,
        "creatorId": payout.creator_id,
        "amount": None if payout.amount is None else format_amount(payout.amount),
        "currency": payout.currency,
        "approvedById": payout.approved_by_id,
        "approvedAt": _iso(payout.approved_at),
        "stripePayoutId": payout.stripe_payout_id,
        "failureReason": payout.failure_reason,
        "flaggedAt": _iso(payout.flagged_at),
        "paidAt": _iso(payout.paid_at),
        "failedAt": _iso(payout.failed_at),
    }


def snapshots(payout_ids):
    """{payout id: snapshot} of the stored rows, read in one query."""
    return {payout.pk: snapshot(payout) for payout in Payout.objects.filter(pk__in=payout_ids)}


def record_action(payout, *, by, action, before, after=None, note=""):
    """Write the audit row of `action` by the staff user `by` on `payout`; `before` and
    `after` are snapshots (`after` defaults to the payout as it is now)."""
    after = snapshot(payout) if after is None else after
    keys = [*before, *(key for key in after if key not in before)]
    changed = [key for key in keys if before.get(key) != after.get(key)]
    email = getattr(by, "email", None) or str(by)
    context = {
        "before": {key: before.get(key) for key in changed},
        "after": {key: after.get(key) for key in changed},
    }
    message = f"{ACTIONS[action]} payout #{payout.pk} by {email}"
    summary = describe_changes(context)
    if summary:
        message += f": {summary}"
    if note:
        message += f" ({note})"
    return write_log(
        type=Log.Type.PAYOUT_AUDIT,
        status=Log.Status.SUCCESS,
        level=Log.Level.INFO,
        message=message,
        context={
            "payoutId": payout.pk,
            "creatorId": payout.creator_id,
            "action": action,
            "staffEmail": email,
            "staffUserId": getattr(by, "pk", None),
            **context,
            "changedFields": changed,
            **({"note": note} if note else {}),
        },
    )


def describe_changes(context):
    """ "status APPROVED → PROCESSING, amount 120.00 → 50.00" from an audit row's context."""
    before, after = context.get("before") or {}, context.get("after") or {}
    if not isinstance(before, dict) or not isinstance(after, dict):
        return ""
    keys = [*before, *(key for key in after if key not in before)]
    return ", ".join(f"{key} {before.get(key)} → {after.get(key)}" for key in keys)


def record_each(payout_ids, *, by, action, before, note=""):
    """One audit row per payout of a bulk action, with `before` from `snapshots()`."""
    for payout in Payout.objects.filter(pk__in=list(payout_ids)).order_by("pk"):
        record_action(payout, by=by, action=action, before=before.get(payout.pk, {}), note=note)


def audit_rows(payout_id):
    """The payout's audit rows, newest first. Found on the (type, createdAt) index: audit
    rows are few next to the job rows, so no index on payoutId is needed."""
    return (
        Log.objects.filter(type=Log.Type.PAYOUT_AUDIT)
        .alias(payout_id=ContextKey("payoutId"))
        .filter(payout_id=str(payout_id))
        .order_by("-created_at", "-pk")
    )
