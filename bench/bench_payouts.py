"""pay_approved_payouts against the bare Stripe calls it makes.

Both sides talk over HTTP to the same local fake Stripe (tests/stripe_fake.py) and make
the same requests per payout (account once per creator, balance, create with a key).
"ours" is the whole service: claim by conditional UPDATE, Stripe, record the id, a
PAYOUT_SUCCESS row. The baseline makes the Stripe calls alone, so the ratio is the cost
of the database work that makes a payout safe to retry and impossible to pay twice.
"""

import os
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
from payouts.processing import pay_approved_payouts
from tests.stripe_fake import FakeStripe, served_stripe

SIZES = [int(size) for size in os.environ.get("BENCH_PAYOUT_SIZES", "200,1000").split(",")]
CREATORS = 20


def fill(fake, size, *, now):
    """`size` APPROVED payouts of 10.00 EUR spread over CREATORS funded creators."""
    users = get_user_model().objects.bulk_create(
        get_user_model()(email=f"bench-payout-{n}@example.com", name=f"Bench {n}")
        for n in range(CREATORS)
    )
    creators = Creator.objects.bulk_create(
        Creator(user=user, stripe_account_id=f"acct_bench{n:04d}", is_stripe_onboarded=True)
        for n, user in enumerate(users)
    )
    for creator in creators:
        fake.add_account(creator.stripe_account_id, balance={"EUR": 10**12})
    Payout.objects.bulk_create(
        Payout(
            creator=creators[n % CREATORS],
            amount=Decimal("10.00"),
            status=Payout.Status.APPROVED,
            approved_at=now,
        )
        for n in range(size)
    )


def clear():
    Log.objects.filter(type__in=["PAYOUT_SUCCESS", "PAYOUT_ERROR"]).delete()
    Payout.objects.filter(creator__user__email__startswith="bench-payout-").delete()
    get_user_model().objects.filter(email__startswith="bench-payout-").delete()


def bare_stripe_calls():
    """The same requests as the service, with no database work around them."""
    accounts = set()
    payouts = Payout.objects.filter(status=Payout.Status.APPROVED).select_related("creator")
    for payout in payouts.order_by("approved_at", "pk"):
        account = payout.creator.stripe_account_id
        if account not in accounts:
            stripe_client.retrieve_account(account)
            accounts.add(account)
        stripe_client.retrieve_balance(account)
        stripe_client.create_payout(
            account_id=account,
            amount=1000,
            currency="EUR",
            idempotency_key=f"bench-baseline-{payout.pk}",
            metadata={"payoutId": payout.pk, "creatorId": payout.creator_id},
        )


def run():
    rows = []
    for size in SIZES:
        with served_stripe(FakeStripe()) as (fake, base_url):
            settings.STRIPE_SECRET_KEY = fake.api_key
            settings.STRIPE_API_BASE = base_url
            clear()
            fill(fake, size, now=timezone.now())
            with Timer() as baseline:
                bare_stripe_calls()
            run = JobRun()
            with Timer() as ours:
                pay_approved_payouts(run)
            assert run.stats["succeeded"] == size, run.stats
            assert len(fake.creations) == 2 * size
            clear()
        rows.append(
            Row(
                "pay_approved_payouts vs bare Stripe calls",
                f"{size} payouts",
                ours.seconds,
                baseline.seconds,
                note="local fake Stripe; the difference is 3 autocommitted writes a payout: "
                "claim, record, log row",
            )
        )
    return rows
