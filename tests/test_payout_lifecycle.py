"""Staff decisions on payouts: create, edit, approve and reject, only from states that allow
them, never for oneself, and each leaving an audit row."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from payouts.audit import audit_rows
from payouts.lifecycle import (
    PayoutActionRefused,
    PayoutStateError,
    approve_payout,
    create_payout_request,
    edit_payout_request,
    reject_payout,
)
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


def test_it_refuses_to_let_a_creator_approve_their_own_payout(make_creator, make_payout, staff):
    payout = make_payout(status=Status.REQUESTED, creator=make_creator(user=staff))

    # It should refuse and leave the request as it was, with no audit row.
    with pytest.raises(PayoutActionRefused, match="your own creator account"):
        approve_payout(payout, by=staff)
    assert Payout.objects.get(pk=payout.pk).status == Status.REQUESTED
    assert not audit_rows(payout.pk).exists()


@pytest.mark.parametrize(
    ("amount", "currency", "reason"),
    [
        (Decimal("0.00"), "EUR", "more than zero"),
        (Decimal("-10.00"), "EUR", "more than zero"),
        (Decimal("10.00"), "XXX", "not a currency Stripe pays out in"),
        (Decimal("10.00"), "", "needs a currency"),
        (Decimal("10.50"), "JPY", "more decimals than JPY allows"),
    ],
)
def test_it_refuses_to_approve_terms_stripe_cannot_pay(
    make_payout, staff, amount, currency, reason
):
    payout = make_payout(status=Status.REQUESTED, amount=amount, currency=currency)

    with pytest.raises(PayoutActionRefused, match=reason):
        approve_payout(payout, by=staff)
    assert Payout.objects.get(pk=payout.pk).status == Status.REQUESTED


def test_it_approves_what_the_approver_saw_and_stores_the_currency_in_capitals(make_payout, staff):
    payout = make_payout(status=Status.REQUESTED, amount=Decimal("120.00"), currency="eur")
    seen = Payout.objects.get(pk=payout.pk)
    # Someone edits the request after the approver read it.
    Payout.objects.filter(pk=payout.pk).update(amount=Decimal("50000.00"))

    # It should refuse to approve terms the approver never saw.
    with pytest.raises(PayoutStateError, match="changed while it was being approved"):
        approve_payout(seen, by=staff)
    assert Payout.objects.get(pk=payout.pk).status == Status.REQUESTED

    fresh = Payout.objects.get(pk=payout.pk)
    approve_payout(fresh, by=staff)
    stored = Payout.objects.get(pk=payout.pk)
    assert (stored.status, stored.amount, stored.currency) == (
        Status.APPROVED,
        Decimal("50000.00"),
        "EUR",
    )


def test_it_never_approves_a_flagged_payout(make_payout, staff):
    flagged = make_payout(status=Status.PROCESSING, flagged_at=timezone.now())
    # Even a row somebody forced back to REQUESTED keeps its flag, and so its refusal.
    forced = make_payout(status=Status.REQUESTED, flagged_at=timezone.now())

    for payout in (flagged, forced):
        with pytest.raises(PayoutStateError, match="flagged for staff"):
            approve_payout(payout, by=staff)
    assert Payout.objects.get(pk=forced.pk).status == Status.REQUESTED


def test_it_writes_an_audit_row_for_each_decision(make_payout, staff):
    approved = make_payout(status=Status.REQUESTED, amount=Decimal("120.00"))
    rejected = make_payout(status=Status.REQUESTED)

    approve_payout(approved, by=staff)
    reject_payout(rejected, by=staff, reason="Duplicate request")

    # It should name the staff user, the payout and the fields before and after.
    row = audit_rows(approved.pk).get()
    assert row.type == "PAYOUT_AUDIT" and row.level == "INFO"
    assert row.context["action"] == "approve"
    assert row.context["staffEmail"] == staff.email and row.context["staffUserId"] == staff.pk
    assert row.context["payoutId"] == approved.pk
    assert row.context["before"]["status"] == "REQUESTED"
    assert row.context["after"]["status"] == "APPROVED"
    assert row.context["after"]["approvedById"] == staff.pk
    assert "status" in row.context["changedFields"]
    assert f"by {staff.email}" in row.message
    row = audit_rows(rejected.pk).get()
    assert row.context["action"] == "reject"
    assert row.context["after"]["failureReason"] == "Duplicate request"


def test_it_creates_and_edits_requests_and_audits_both(make_creator, staff):
    creator = make_creator()
    payout = create_payout_request(
        Payout(creator=creator, amount=Decimal("80.00"), currency="usd"), by=staff
    )

    # It should store a REQUESTED payout in capitals, and say who asked.
    assert (payout.status, payout.currency) == (Status.REQUESTED, "USD")
    created = audit_rows(payout.pk).get()
    assert created.context["action"] == "create" and created.context["before"] == {
        key: None for key in created.context["after"]
    }

    other = make_creator()
    edit_payout_request(payout, by=staff, creator=other, amount=Decimal("90.00"), currency="eur")
    edited = audit_rows(payout.pk).filter(context__action="edit").get()
    assert edited.context["before"] == {
        "creatorId": creator.pk,
        "amount": "80.00",
        "currency": "USD",
    }
    assert edited.context["after"] == {"creatorId": other.pk, "amount": "90.00", "currency": "EUR"}

    # Once approved, it should refuse an edit.
    approve_payout(Payout.objects.get(pk=payout.pk), by=staff)
    with pytest.raises(PayoutStateError, match="is APPROVED; only REQUESTED"):
        edit_payout_request(payout, by=staff, creator=other, amount=Decimal("1"), currency="EUR")
    with pytest.raises(PayoutActionRefused, match="not a currency"):
        create_payout_request(Payout(creator=other, amount=Decimal("1"), currency="XXX"), by=staff)
