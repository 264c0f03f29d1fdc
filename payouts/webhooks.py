"""Stripe webhooks: a payout on a connected account is settled the moment Stripe knows.

Stripe pushes `payout.paid`, `payout.failed` and `payout.canceled` (Connect events, carrying
the connected account's id in `account`). Each verified event is acted on once: its id is
stored (`StripeEvent`, unique) in the same transaction as what it changed, so a
redelivery, or two deliveries at once, change nothing the second time. It settles our
payout as polling would (`processing.settle_payout`: the same PAYOUT_SUCCESS /
PAYOUT_ERROR rows); polling by process-payouts and reconcile-payouts stays as the fallback.

https://docs.stripe.com/api/events/types#event_types-payout.paid
"""

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from cronlogs import logger
from payouts.flagged import record_found, stripe_payout_problem
from payouts.lifecycle import PayoutActionRefused
from payouts.matching import status_contradiction
from payouts.models import Payout, StripeEvent
from payouts.processing import settle_payout, tell_staff

HANDLED_TYPES = ("payout.paid", "payout.failed", "payout.canceled")
WEBHOOK = "stripe-webhook"


@dataclass(frozen=True)
class Handled:
    outcome: str  # settled, unchanged, contradiction, ignored, replayed
    detail: str
    payout_id: int | None = None


def handle_stripe_event(event, *, now):
    """Act on one verified `stripe_client.WebhookEvent`, at most once per event id."""
    if event.type not in HANDLED_TYPES:
        return Handled("ignored", f"{event.type} is not an event this endpoint acts on")
    with transaction.atomic():
        try:
            with transaction.atomic():
                seen = StripeEvent.objects.create(
                    event_id=event.id, type=event.type, account=event.account or ""
                )
        except IntegrityError:
            return Handled("replayed", f"event {event.id} was already processed; nothing changed")
        handled = _settle(event, now=now)
        seen.payout_id, seen.outcome = handled.payout_id, f"{handled.outcome}: {handled.detail}"
        seen.save(update_fields=["payout", "outcome"])
    return handled


def _our_payout(remote):
    """Our payout for the Stripe payout `remote`: by its recorded id, or — if we never
    stored Stripe's id (a crash, or flagged) — by the metadata.payoutId we sent."""
    payout = Payout.objects.select_related("creator").filter(stripe_payout_id=remote.id).first()
    if payout is not None:
        return payout
    named = remote.metadata.get("payoutId", "")
    if named.isdigit() and len(named) < 19:
        return (
            Payout.objects.select_related("creator")
            .filter(pk=int(named), stripe_payout_id__isnull=True)
            .first()
        )
    return None


def _settle(event, *, now):
    remote = event.payout
    if remote is None:
        return Handled("ignored", "the event carries no payout")
    payout = _our_payout(remote)
    if payout is None:
        return Handled("ignored", f"Stripe payout {remote.id} is not one of ours")
    account = payout.creator.stripe_account_id
    if not event.account or event.account != account:
        return _doubtful(
            event,
            payout,
            f"the event is about account {event.account or '(none)'}; payout #{payout.pk} is "
            f"paid to {account or 'no account'}",
        )
    if payout.stripe_payout_id is None:
        problem = stripe_payout_problem(payout, remote)
        if problem:
            return _doubtful(
                event, payout, f"Stripe payout {remote.id} is not payout #{payout.pk}: {problem}"
            )
        try:
            outcome = record_found(payout, remote, now=now, by=WEBHOOK)
        except PayoutActionRefused as exc:
            return Handled("ignored", str(exc), payout.pk)
    else:
        outcome = settle_payout(payout, remote, now=now)
    if outcome is None or outcome.stat is None:
        contradiction = status_contradiction(payout, remote)
        if contradiction:
            # A bank return after PAID, say: only a person can tell what is true.
            tell_staff(payout, contradiction, _about(event))
            return Handled("contradiction", contradiction, payout.pk)
        return Handled("unchanged", f"payout #{payout.pk} is {payout.status}", payout.pk)
    return Handled("settled", f"payout #{payout.pk} is now {payout.status}", payout.pk)


def _doubtful(event, payout, detail):
    """An event naming one of our payouts that does not fit it: ignored, and logged."""
    logger.log_payout_error(
        payout.pk, payout.creator_id, f"Stripe event ignored: {detail}", _about(event)
    )
    return Handled("ignored", detail, payout.pk)


def _about(event):
    return {
        "source": "webhook",
        "eventId": event.id,
        "eventType": event.type,
        "eventAccount": event.account or "",
        "stripePayoutId": event.payout.id,
        "stripeStatus": event.payout.status,
    }
