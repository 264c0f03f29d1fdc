"""A flagged payout leaves its flag only through a check against Stripe: staff settle it
with the Stripe id they found (amount, currency and payoutId must match) or mark it failed
(no Stripe payout may carry its id); the payout jobs never touch it."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from cronlogs.models import Log
from payouts.audit import audit_rows
from payouts.flagged import mark_flagged_payout_failed, settle_flagged_payout
from payouts.lifecycle import PayoutActionRefused
from payouts.models import Payout
from payouts.processing import process_payouts
from tests.conftest import admin_messages as shown
from tests.conftest import job_run
from tests.conftest import post_payout_action as post_action

pytestmark = pytest.mark.django_db
Status = Payout.Status


@pytest.fixture
def flagged(make_creator, make_payout, stripe_fake):
    """A payout claimed 30 hours ago, never confirmed, flagged for staff."""

    def make(amount=Decimal("120.00"), **fields):
        creator = make_creator()
        stripe_fake.add_account(creator.stripe_account_id, balance={"EUR": 1_000_000})
        claimed = timezone.now() - timedelta(hours=30)
        return make_payout(
            creator=creator,
            amount=amount,
            status=Status.PROCESSING,
            claimed_at=claimed,
            idempotency_key=f"callastar-payout-test-{claimed.timestamp()}",
            flagged_at=timezone.now() - timedelta(hours=5),
            **fields,
        )

    return make


@pytest.fixture
def settler(make_staff):
    return make_staff("payouts.settle_payout", "payouts.view_payout")


def on_stripe(stripe_fake, payout, *, amount=12_000, currency="eur", status="paid", **metadata):
    return stripe_fake.add_payout(
        payout.creator.stripe_account_id,
        amount=amount,
        currency=currency,
        status=status,
        metadata={"payoutId": payout.pk, **metadata},
    )


def test_it_settles_a_flagged_payout_with_a_matching_stripe_id(flagged, settler, stripe_fake):
    payout = flagged()
    stripe_id = on_stripe(stripe_fake, payout, status="paid")

    settle_flagged_payout(payout, stripe_id, by=settler)

    # It should record the id, clear the flag and follow Stripe's status: paid.
    payout.refresh_from_db()
    assert payout.stripe_payout_id == stripe_id and payout.flagged_at is None
    assert payout.status == Status.PAID
    assert payout.metadata["resolvedBy"] == settler.email and "flaggedAt" in payout.metadata
    events = Log.objects.filter(type="PAYOUT_SUCCESS", context__payoutId=payout.pk)
    assert sorted(events.values_list("context__event", flat=True)) == ["paid", "recorded"]
    row = audit_rows(payout.pk).get()
    assert row.context["action"] == "settle" and row.context["staffEmail"] == settler.email
    assert row.context["before"]["status"] == "PROCESSING"
    assert row.context["after"]["status"] == "PAID"
    # One GET of that payout on the creator's account, nothing else.
    assert stripe_fake.requests == [
        ("GET", f"/v1/payouts/{stripe_id}", payout.creator.stripe_account_id, None)
    ]


def test_a_settled_payout_still_in_transit_is_then_settled_by_the_job(
    flagged, settler, stripe_fake
):
    payout = flagged()
    stripe_id = on_stripe(stripe_fake, payout, status="in_transit")

    settle_flagged_payout(payout, stripe_id, by=settler)
    payout.refresh_from_db()
    assert (payout.status, payout.flagged_at) == (Status.PROCESSING, None)

    # Unflagged now, it is the jobs' again: the next poll settles it.
    stripe_fake.set_payout_status(stripe_id, "paid")
    process_payouts(job_run())
    payout.refresh_from_db()
    assert payout.status == Status.PAID


@pytest.mark.parametrize(
    ("stripe_payout", "reason"),
    [
        ({"amount": 5_000_000}, "its amount is 50000.00 EUR, not 120.00 EUR"),
        ({"currency": "usd"}, "its currency is USD, not EUR"),
        ({"payoutId": "999999"}, "its metadata payoutId is '999999'"),
    ],
)
def test_it_refuses_a_stripe_payout_that_is_not_this_one(
    flagged, settler, stripe_fake, stripe_payout, reason
):
    payout = flagged()
    metadata = {"payoutId": stripe_payout.pop("payoutId")} if "payoutId" in stripe_payout else {}
    stripe_id = on_stripe(stripe_fake, payout, **stripe_payout, **metadata)
    before = Payout.objects.filter(pk=payout.pk).values().get()

    with pytest.raises(PayoutActionRefused, match=reason):
        settle_flagged_payout(payout, stripe_id, by=settler)
    assert Payout.objects.filter(pk=payout.pk).values().get() == before
    assert not audit_rows(payout.pk).exists()


def test_it_refuses_an_id_stripe_does_not_have_on_the_creators_account(
    flagged, settler, stripe_fake
):
    payout = flagged()
    elsewhere = flagged()
    foreign_id = on_stripe(stripe_fake, elsewhere)  # a real payout, on another account

    for stripe_id in ("po_doesnotexist", foreign_id):
        with pytest.raises(PayoutActionRefused, match="Stripe has no payout"):
            settle_flagged_payout(payout, stripe_id, by=settler)
    assert Payout.objects.get(pk=payout.pk).flagged_at is not None


def test_it_marks_failed_only_a_payout_stripe_never_created(flagged, settler, stripe_fake):
    absent = flagged()
    present = flagged()
    stripe_id = on_stripe(stripe_fake, present, status="paid")
    # Someone else's payouts on the absent one's account do not count.
    stripe_fake.add_payout(absent.creator.stripe_account_id, amount=100, metadata={})

    mark_flagged_payout_failed(absent, by=settler)
    with pytest.raises(PayoutActionRefused, match=f"exists on Stripe: {stripe_id} \\(paid\\)"):
        mark_flagged_payout_failed(present, by=settler)

    absent.refresh_from_db()
    assert absent.status == Status.FAILED and absent.flagged_at is None
    assert absent.failure_reason == f"Never created on Stripe (checked by {settler.email})"
    assert audit_rows(absent.pk).get().context["action"] == "mark_failed"
    assert Payout.objects.get(pk=present.pk).status == Status.PROCESSING
    # It should prove absence with list calls, never a GET per payout.
    assert {request[:2] for request in stripe_fake.requests} == {("GET", "/v1/payouts")}


def test_it_refuses_the_flagged_actions_on_a_payout_that_is_not_flagged(
    make_payout, settler, stripe_fake
):
    payout = make_payout(status=Status.PROCESSING, claimed_at=timezone.now())

    with pytest.raises(PayoutActionRefused, match="is not flagged"):
        settle_flagged_payout(payout, "po_x", by=settler)
    with pytest.raises(PayoutActionRefused, match="is not flagged"):
        mark_flagged_payout_failed(payout, by=settler)
    assert stripe_fake.requests == []


def test_the_jobs_never_touch_a_flagged_payout(flagged, stripe_fake):
    # Even one carrying a Stripe id (entered by hand before this rule) is left alone.
    with_id = flagged()
    stripe_id = on_stripe(stripe_fake, with_id, status="paid")
    Payout.objects.filter(pk=with_id.pk).update(stripe_payout_id=stripe_id)
    without = flagged()

    stats = job_run()
    process_payouts(stats)

    for payout in (with_id, without):
        payout.refresh_from_db()
        assert payout.status == Status.PROCESSING and payout.flagged_at is not None
    assert stripe_fake.requests == []


def test_the_admin_settles_through_a_form_asking_for_the_stripe_id(
    client, settler, flagged, stripe_fake
):
    client.force_login(settler)
    payout = flagged()
    stripe_id = on_stripe(stripe_fake, payout, status="paid")

    # The first step asks for the id and changes nothing; a malformed id is refused.
    page = post_action(client, "settle_with_stripe_id", [payout])
    assert b'name="stripe_payout_id"' in page.content and b'name="apply"' in page.content
    page = post_action(
        client, "settle_with_stripe_id", [payout], apply="1", stripe_payout_id="12345"
    )
    assert b"A Stripe payout id looks like po_" in page.content
    assert stripe_fake.requests == []

    response = post_action(
        client, "settle_with_stripe_id", [payout], apply="1", stripe_payout_id=stripe_id
    )

    assert shown(response) == [
        (
            "success",
            f"Payout #{payout.pk} is Stripe payout {stripe_id}, which Stripe reports paid: "
            "it is now PAID.",
        )
    ]
    assert Payout.objects.get(pk=payout.pk).status == Status.PAID


def test_the_admin_marks_failed_after_a_confirmation_and_says_why_it_refuses(
    client, settler, flagged, stripe_fake
):
    client.force_login(settler)
    absent, present = flagged(), flagged()
    on_stripe(stripe_fake, present)

    page = post_action(client, "mark_failed", [absent, present])
    assert b"Check with Stripe and mark failed" in page.content
    assert Payout.objects.get(pk=absent.pk).status == Status.PROCESSING

    response = post_action(client, "mark_failed", [absent, present], apply="1")

    messages = shown(response)
    assert ("success", "Marked 1 payout(s) failed: none exists on Stripe.") in messages
    assert any(level == "warning" and "exists on Stripe" in text for level, text in messages)
    assert Payout.objects.get(pk=absent.pk).status == Status.FAILED
    assert Payout.objects.get(pk=present.pk).status == Status.PROCESSING


def test_the_admin_reports_stripe_being_down_and_changes_nothing(
    client, settler, flagged, stripe_fake, settings
):
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    client.force_login(settler)
    payout = flagged()
    stripe_fake.fail_next("GET", r"^/v1/payouts", status=503)

    response = post_action(client, "mark_failed", [payout], apply="1")

    [(level, text)] = shown(response)
    assert level == "warning" and "Stripe could not be asked, nothing changed" in text
    assert Payout.objects.get(pk=payout.pk).flagged_at is not None
