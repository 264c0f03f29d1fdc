"""A dry run says what the real run then does: every job, over the same data.

Each job's dry run and real run share one decision (SPEC §4, STYLE 13); these tests run
both over the same rows and compare what was announced with what happened.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from bookings.models import Booking
from cronlogs.logger import write_log
from cronlogs.models import Log
from cronlogs.runner import run_job
from payouts.models import Payout

pytestmark = pytest.mark.django_db


def dry_then_real(job):
    dry = run_job(job, dry_run=True)
    assert dry.status == "dry-run" and not dry.failed
    real = run_job(job)
    assert not real.failed, real.error
    return dry.stats, real.stats


def test_cleanup_logs_deletes_what_its_dry_run_counted():
    now = timezone.now()
    for level, days in [("INFO", 31), ("INFO", 29), ("WARNING", 61), ("ERROR", 91), ("ERROR", 5)]:
        row = write_log(type="EMAIL_SENT", status="SUCCESS", level=level, message="x")
        Log.objects.filter(pk=row.pk).update(created_at=now - timedelta(days=days))

    dry, real = dry_then_real("cleanup-logs")

    for key in ("infoDeleted", "warningDeleted", "errorDeleted"):
        assert dry[key] == real[key]
    assert (real["infoDeleted"], real["warningDeleted"], real["errorDeleted"]) == (1, 1, 1)


def test_reminders_sends_and_refuses_what_its_dry_run_said(make_booking, make_user):
    soon = timezone.now() + timedelta(minutes=10)
    ok = make_booking(starts_at=soon)
    bad_address = make_booking(starts_at=soon, client=make_user(email="not-an-address"))
    make_booking(starts_at=soon + timedelta(hours=3))  # not due

    dry, real = dry_then_real("send-booking-reminders")

    assert dry["emailsToSend"] == real["emailsSent"] == 3
    assert dry["emailsToRefuse"] == real["emailsFailed"] == 1
    sent = {
        (row.context["bookingId"], row.context["recipientEmail"])
        for row in Log.objects.filter(type="EMAIL_SENT")
    }
    assert sent == {
        (ok.pk, ok.client.email),
        (ok.pk, ok.creator.user.email),
        (bad_address.pk, bad_address.creator.user.email),
    }
    assert len(mail.outbox) == 3


def test_cleanup_daily_rooms_deletes_the_rooms_its_dry_run_listed(daily_fake, make_booking):
    long_ago, just_now = timezone.now() - timedelta(days=1), timezone.now() - timedelta(minutes=35)
    # The last call ended 5 minutes ago: its room is kept for the grace period, by both.
    plan = ["COMPLETED", "CANCELLED", "CONFIRMED", "COMPLETED", "COMPLETED"]
    for index, status in enumerate(plan):
        make_booking(
            status=status,
            starts_at=just_now if index == 4 else long_ago,
            daily_room_name=f"room-{index}",
            daily_room_url=f"https://callastar.daily.co/room-{index}",
        )
    daily_fake.add_rooms("room-0", "room-3", "room-4")  # room-1 is already gone

    dry, real = dry_then_real("cleanup-daily-rooms")

    deleted = sorted(
        Log.objects.filter(type="DAILY_ROOM_DELETED").values_list("context__roomId", flat=True)
    )
    assert dry["roomsToDelete"] == deleted == ["room-0", "room-1", "room-3"]
    assert dry["totalBookings"] == real["totalBookings"] == 3
    assert Booking.objects.get(daily_room_name="room-2").status == "CONFIRMED"
    assert daily_fake.rooms == {"room-4"}


def test_process_payouts_pays_skips_and_fails_what_its_dry_run_said(
    make_creator, make_payout, stripe_fake
):
    def funded(balance=100_000, **fields):
        creator = make_creator(**fields)
        stripe_fake.add_account(creator.stripe_account_id, balance={"EUR": balance})
        return creator

    rich = funded()
    paid = make_payout(creator=rich, amount=Decimal("120.00"))
    zero = make_payout(creator=rich, amount=Decimal("0.00"))
    poor = make_payout(creator=funded(balance=1_000), amount=Decimal("50.00"))
    blocked = make_payout(creator=funded(is_payout_blocked=True), amount=Decimal("10.00"))
    disabled_creator = make_creator()
    stripe_fake.add_account(disabled_creator.stripe_account_id, payouts_enabled=False)
    disabled = make_payout(creator=disabled_creator, amount=Decimal("10.00"))
    # Two payouts of one creator: the second draws on what the first left.
    shared = funded(balance=15_000)
    first = make_payout(
        creator=shared, amount=Decimal("100.00"), approved_at=timezone.now() - timedelta(hours=1)
    )
    second = make_payout(creator=shared, amount=Decimal("100.00"))

    dry, real = dry_then_real("process-payouts")

    def ids(key):
        return sorted(entry["payoutId"] for entry in dry[key])

    statuses = dict(Payout.objects.values_list("pk", "status"))
    assert (
        ids("wouldPay")
        == sorted([paid.pk, first.pk])
        == sorted(pk for pk, status in statuses.items() if status == "PROCESSING")
    )
    assert (
        ids("wouldFail")
        == sorted([zero.pk, poor.pk, second.pk])
        == sorted(pk for pk, status in statuses.items() if status == "FAILED")
    )
    assert (
        ids("wouldSkip")
        == sorted([blocked.pk, disabled.pk])
        == sorted(pk for pk, status in statuses.items() if status == "APPROVED")
    )
    reasons = {entry["payoutId"]: entry["reason"] for entry in dry["wouldFail"]}
    assert reasons[zero.pk] == Payout.objects.get(pk=zero.pk).failure_reason
    assert reasons[zero.pk] == "A payout must be more than zero, not 0.00"
    assert (real["succeeded"], real["failed"], real["skipped"]) == (2, 3, 2)


def test_automatic_payouts_pay_who_and_what_the_dry_run_said(make_creator, stripe_fake):
    def scheduled(balance, payouts_enabled=True, **fields):
        creator = make_creator(payout_schedule="DAILY", **fields)
        stripe_fake.add_account(
            creator.stripe_account_id, balance=balance, payouts_enabled=payouts_enabled
        )
        return creator

    paid = scheduled({"EUR": 12_345})
    scheduled({"EUR": 999})  # below the minimum
    scheduled({"EUR": 50_000}, payouts_enabled=False)
    yen = scheduled({"JPY": 5_000}, currency="JPY", payout_minimum=Decimal("1000"))

    dry, real = dry_then_real("process-automatic-payouts")

    announced = {(e["creatorId"], e["currency"], e["amount"]) for e in dry["wouldPay"]}
    made = {
        (payout.creator_id, payout.currency, f"{payout.amount:.2f}")
        for payout in Payout.objects.filter(automatic=True)
    }
    assert announced == made == {(paid.pk, "EUR", "123.45"), (yen.pk, "JPY", "5000.00")}
    assert dry["skipped"] == real["skipped"] == 2
    assert dry["totalAmountByCurrency"] == real["totalAmountByCurrency"]


def test_reconcile_payouts_settles_resolves_and_reports_what_its_dry_run_said(
    make_creator, make_payout, stripe_fake
):
    now = timezone.now()
    creator = make_creator()
    stripe_fake.add_account(creator.stripe_account_id)
    account = creator.stripe_account_id

    def payout(status=Payout.Status.PROCESSING, hours=2, **fields):
        return make_payout(
            creator=creator,
            status=status,
            amount=Decimal("10.00"),
            claimed_at=now - timedelta(hours=hours),
            **fields,
        )

    def on_stripe(ours, status, amount=1_000):
        return stripe_fake.add_payout(
            account, amount=amount, status=status, metadata={"payoutId": ours.pk}
        )

    moving = payout()
    Payout.objects.filter(pk=moving.pk).update(stripe_payout_id=on_stripe(moving, "paid"))
    unconfirmed = payout()
    on_stripe(unconfirmed, "in_transit")
    found = payout(hours=50, flagged_at=now - timedelta(hours=20))
    on_stripe(found, "paid")
    absent = payout(hours=50, flagged_at=now - timedelta(hours=20))
    settled_already = payout(status=Payout.Status.PAID)
    Payout.objects.filter(pk=settled_already.pk).update(
        stripe_payout_id=on_stripe(settled_already, "paid")
    )
    wrong = payout(status=Payout.Status.PAID)
    Payout.objects.filter(pk=wrong.pk).update(stripe_payout_id=on_stripe(wrong, "paid", 99))

    dry, real = dry_then_real("reconcile-payouts")

    def ids(key):
        return sorted(entry["payoutId"] for entry in dry[key])

    statuses = dict(Payout.objects.values_list("pk", "status"))
    assert ids("wouldSettle") == [moving.pk] and statuses[moving.pk] == "PAID"
    assert real["settled"] == 1
    assert ids("wouldRecord") == [unconfirmed.pk] and real["recorded"] == 1
    assert Payout.objects.get(pk=unconfirmed.pk).stripe_payout_id
    assert ids("wouldResolve") == sorted([found.pk, absent.pk]) and real["resolved"] == 2
    assert (statuses[found.pk], statuses[absent.pk]) == ("PAID", "FAILED")
    for key in ("accountsChecked", "stripePayoutsSeen", "matched", "mismatches"):
        assert dry[key] == real[key], key
    assert real["mismatches"] == 1
    assert dry["mismatchedPayouts"] == real["mismatchedPayouts"]
