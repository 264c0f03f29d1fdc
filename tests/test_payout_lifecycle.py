"""Staff decisions on payouts: approve and reject, only from states that allow them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from payouts.lifecycle import PayoutStateError, approve_payout, reject_payout
from payouts.models import Payout

pytestmark = pytest.mark.django_db
Status = Payout.Status


@pytest.fixture
def staff(make_user):
    return make_user(is_staff=True)


def test_it_approves_a_requested_payout(make_payout, staff):
    payout = make_payout(status=Status.REQUESTED)
    now = timezone.now() - timedelta(minutes=3)

    approve_payout(payout, by=staff, now=now)

    # It should record who approved it and when, in the database and on the instance.
    stored = Payout.objects.get(pk=payout.pk)
    assert stored.status == Status.APPROVED
    assert (stored.approved_at, stored.approved_by) == (now, staff)
    assert payout.status == Status.APPROVED


@pytest.mark.parametrize(
    "status", [Status.APPROVED, Status.PROCESSING, Status.PAID, Status.FAILED, Status.REJECTED]
)
def test_it_refuses_to_approve_a_payout_that_is_not_requested(make_payout, staff, status):
    payout = make_payout(status=status)
    before = Payout.objects.filter(pk=payout.pk).values().get()

    # It should name the state it found and change nothing.
    with pytest.raises(PayoutStateError, match=f"is {status}; only REQUESTED payouts"):
        approve_payout(payout, by=staff)
    assert Payout.objects.filter(pk=payout.pk).values().get() == before


def test_it_refuses_an_approval_that_lost_a_race(make_payout, staff):
    payout = make_payout(status=Status.REQUESTED)
    stale = Payout.objects.get(pk=payout.pk)
    approve_payout(payout, by=staff)

    # A second admin holding the old instance should get an error, not a second approval.
    with pytest.raises(PayoutStateError, match="is APPROVED"):
        approve_payout(stale, by=staff)


@pytest.mark.parametrize("status", [Status.REQUESTED, Status.APPROVED])
def test_it_rejects_a_payout_not_yet_being_paid(make_payout, staff, status):
    payout = make_payout(status=status, metadata={"note": "kept"})

    reject_payout(payout, by=staff, reason="Duplicate request")

    # It should keep the reason and who decided, and leave other metadata alone.
    stored = Payout.objects.get(pk=payout.pk)
    assert stored.status == Status.REJECTED
    assert stored.failure_reason == "Duplicate request"
    assert stored.metadata["rejectedBy"] == staff.pk and stored.metadata["note"] == "kept"
    assert "rejectedAt" in stored.metadata


@pytest.mark.parametrize("status", [Status.PROCESSING, Status.PAID, Status.CANCELED])
def test_it_refuses_to_reject_a_payout_in_flight_or_done(make_payout, staff, status):
    payout = make_payout(status=status)

    with pytest.raises(PayoutStateError, match="only REQUESTED or APPROVED payouts can be"):
        reject_payout(payout, by=staff, reason="Too late")
    assert Payout.objects.get(pk=payout.pk).status == status


def test_it_requires_a_reason_to_reject(make_payout, staff):
    payout = make_payout(status=Status.REQUESTED)

    with pytest.raises(ValueError, match="reason is required"):
        reject_payout(payout, by=staff, reason="  ")
    assert Payout.objects.get(pk=payout.pk).status == Status.REQUESTED
