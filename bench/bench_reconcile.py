"""reconcile_payouts against the bare Stripe list calls it makes.

Both sides list the payouts of the same connected accounts, over HTTP, from the same local
fake Stripe (tests/stripe_fake.py), with the official SDK's auto-paging: one request per
page of 100, so one per account here. "ours" is the whole job service — the accounts query,
one query for our payouts per account, the match by metadata.payoutId and the checks of
amount, currency and status. The baseline makes the list calls and walks the results,
nothing else, so the ratio is the cost of the reconciliation itself.
"""

import os
import statistics
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from bench.harness import Row, Timer
from bookings.models import Creator
from cronlogs.models import Log
from cronlogs.work import JobRun
from payouts import stripe_client
from payouts.models import Payout
from payouts.reconciliation import accounts_to_check, reconcile_payouts
from tests.stripe_fake import FakeStripe, served_stripe

ACCOUNTS = int(os.environ.get("BENCH_RECONCILE_ACCOUNTS", "200"))
PER_ACCOUNT = int(os.environ.get("BENCH_RECONCILE_PAYOUTS", "50"))
REPEATS = 5
EMAILS = "bench-reconcile-"


def fill(fake, *, now):
    """ACCOUNTS creators, each with PER_ACCOUNT PAID payouts of 10.00 EUR claimed in the
    last days, and the same payouts on their Stripe accounts."""
    users = get_user_model().objects.bulk_create(
        get_user_model()(email=f"{EMAILS}{n}@example.com", name=f"Bench {n}")
        for n in range(ACCOUNTS)
    )
    creators = Creator.objects.bulk_create(
        Creator(user=user, stripe_account_id=f"acct_rec{n:05d}", is_stripe_onboarded=True)
        for n, user in enumerate(users)
    )
    for creator in creators:
        fake.add_account(creator.stripe_account_id)
    claimed = now - timedelta(days=2)
    payouts = Payout.objects.bulk_create(
        Payout(
            creator=creator,
            amount=Decimal("10.00"),
            status=Payout.Status.PAID,
            approved_at=claimed,
            claimed_at=claimed,
            paid_at=claimed,
        )
        for creator in creators
        for _ in range(PER_ACCOUNT)
    )
    for payout in payouts:
        payout.stripe_payout_id = fake.add_payout(
            payout.creator.stripe_account_id,
            amount=1000,
            status="paid",
            metadata={"payoutId": payout.pk, "creatorId": payout.creator_id},
            created=(claimed + timedelta(seconds=1)).timestamp(),
        )
    Payout.objects.bulk_update(payouts, ["stripe_payout_id"], batch_size=2000)


def clear():
    Log.objects.filter(type__in=["PAYOUT_SUCCESS", "PAYOUT_ERROR"]).delete()
    Payout.objects.filter(creator__user__email__startswith=EMAILS).delete()
    get_user_model().objects.filter(email__startswith=EMAILS).delete()


def bare_list_calls(now):
    """The same list requests, straight through the SDK, walking every payout."""
    seen = 0
    for _creator_id, account_id, since in accounts_to_check(now=now):
        page = stripe_client.client().v1.payouts.list(
            {"created": {"gte": int(since.timestamp())}, "limit": 100},
            options={"stripe_account": account_id},
        )
        for _payout in page.auto_paging_iter():
            seen += 1
    return seen


def run():
    now = timezone.now()
    with served_stripe(FakeStripe()) as (fake, base_url):
        settings.STRIPE_SECRET_KEY = fake.api_key
        settings.STRIPE_API_BASE = base_url
        clear()
        fill(fake, now=now)
        total = ACCOUNTS * PER_ACCOUNT
        baseline_times, our_times = [], []
        # Alternated and repeated: the machine's other load hits both sides alike.
        for _ in range(REPEATS):
            fake.requests.clear()
            with Timer() as baseline:
                assert bare_list_calls(now) == total
            baseline_times.append(baseline.seconds)
            baseline_requests = len(fake.requests)
            fake.requests.clear()
            job = JobRun(now=now)
            with Timer() as ours:
                reconcile_payouts(job)
            our_times.append(ours.seconds)
            stats = job.stats
            assert (stats["matched"], stats["mismatches"]) == (total, 0), stats
            # One list call per page (each account fits in one), no GET per payout.
            assert len(fake.requests) == baseline_requests == len(fake.payout_lists())
            assert baseline_requests == ACCOUNTS
        clear()
    return [
        Row(
            "reconcile_payouts vs bare list calls",
            f"{ACCOUNTS} accounts x {PER_ACCOUNT} payouts",
            statistics.median(our_times),
            statistics.median(baseline_times),
            note=f"median of {REPEATS}; local fake Stripe over HTTP; {ACCOUNTS} list requests "
            "on both sides, no per-payout GET; goal 1.3x",
        )
    ]
