"""Admin for payouts: approve (who and when), reject with a reason, pay approved now, as a
superuser; what other staff may do is in test_admin_payout_permissions.py."""

from decimal import Decimal

import pytest
from django.utils import timezone

from cronlogs.models import Log
from payouts.models import Payout
from tests.conftest import PAYOUT_CHANGELIST as CHANGELIST
from tests.conftest import admin_messages as shown
from tests.conftest import post_payout_action as post_action

pytestmark = pytest.mark.django_db
Status = Payout.Status


def test_it_renders_the_payout_pages(staff_client, make_payout):
    payout = make_payout(status=Status.REQUESTED, amount=Decimal("123.45"))
    paid = make_payout(status=Status.PAID)

    # Each page should answer and show the payout it is about; the filter should keep it
    # and leave the paid one out.
    for url, shows, hides in (
        (CHANGELIST, [f"Payout #{payout.pk}", f"Payout #{paid.pk}", "123.45"], []),
        (f"{CHANGELIST}?status__exact=REQUESTED", [f"Payout #{payout.pk}"], [f"Payout #{paid.pk}"]),
        (f"{CHANGELIST}{payout.pk}/change/", ["123.45", "REQUESTED"], []),
    ):
        response = staff_client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert all(text in page for text in shows), (url, shows)
        assert not any(f"{text} " in page for text in hides), (url, hides)


def test_it_approves_requested_payouts_recording_who_and_when(
    staff_client, make_payout, admin_user
):
    requested = make_payout(status=Status.REQUESTED)
    paid = make_payout(status=Status.PAID)

    response = post_action(staff_client, "approve_payouts", [requested, paid])

    # It should approve the requested one, stamp it, and refuse the paid one.
    requested.refresh_from_db()
    assert requested.status == Status.APPROVED
    assert requested.approved_by == admin_user
    assert requested.approved_at is not None
    paid.refresh_from_db()
    assert paid.status == Status.PAID
    messages = shown(response)
    assert (
        "success",
        "Approved 1 payout(s); process-payouts pays them on its next run.",
    ) in messages
    assert any(
        level == "warning" and f"Payout #{paid.pk} is PAID" in text for level, text in messages
    )


def test_it_asks_for_a_reason_before_rejecting(staff_client, make_payout):
    payout = make_payout(status=Status.REQUESTED)

    # The first step shows the form and changes nothing.
    page = post_action(staff_client, "reject_payouts", [payout])
    assert page.status_code == 200
    assert b'name="reason"' in page.content
    assert b'name="apply"' in page.content
    payout.refresh_from_db()
    assert payout.status == Status.REQUESTED

    # An empty reason is refused on the same form.
    page = post_action(staff_client, "reject_payouts", [payout], apply="1", reason="  ")
    assert b"This field is required" in page.content
    payout.refresh_from_db()
    assert payout.status == Status.REQUESTED

    # With a reason it rejects, and keeps the reason.
    response = post_action(
        staff_client, "reject_payouts", [payout], apply="1", reason="Chargeback pending"
    )
    payout.refresh_from_db()
    assert payout.status == Status.REJECTED
    assert payout.failure_reason == "Chargeback pending"
    assert shown(response) == [("success", "Rejected 1 payout(s).")]


def test_it_pays_the_selected_approved_payouts_now(
    staff_client, make_creator, make_payout, stripe_fake
):
    creator = make_creator()
    stripe_fake.add_account(creator.stripe_account_id, balance={"EUR": 100_000})
    approved = make_payout(creator=creator, amount=Decimal("25.00"))
    requested = make_payout(creator=creator, status=Status.REQUESTED)

    response = post_action(staff_client, "pay_approved_now", [approved, requested])

    # It should pay only the approved payout, through the job's code, once.
    approved.refresh_from_db()
    requested.refresh_from_db()
    assert approved.status in (Status.PROCESSING, Status.PAID)
    assert approved.stripe_payout_id
    assert requested.status == Status.REQUESTED
    assert len(stripe_fake.payout_posts()) == 1
    assert shown(response)[0] == ("success", "Payouts: 1 sent to Stripe, 0 failed, 0 skipped.")
    assert Log.objects.filter(type="PAYOUT_SUCCESS", context__payoutId=approved.pk).exists()


def test_it_names_the_missing_stripe_key(staff_client, make_payout, settings):
    settings.STRIPE_SECRET_KEY = ""
    payout = make_payout()

    response = post_action(staff_client, "pay_approved_now", [payout])

    level, text = shown(response)[0]
    assert level == "error" and "STRIPE_SECRET_KEY" in text
    payout.refresh_from_db()
    assert payout.status == Status.APPROVED


def test_it_offers_no_editable_field_once_a_payout_is_past_requested(staff_client, make_payout):
    flagged = make_payout(status=Status.PROCESSING, flagged_at=timezone.now())
    approved = make_payout(status=Status.APPROVED)
    requested = make_payout(status=Status.REQUESTED)

    # It should show a read-only page past REQUESTED, even to a superuser: no status,
    # Stripe id or terms to type into.
    for payout in (flagged, approved):
        page = staff_client.get(f"{CHANGELIST}{payout.pk}/change/").content
        for name in ("status", "stripe_payout_id", "amount", "currency", "creator"):
            assert f'name="{name}"'.encode() not in page, (payout.status, name)
    page = staff_client.get(f"{CHANGELIST}{requested.pk}/change/").content
    assert b'name="amount"' in page and b'name="status"' not in page
    assert staff_client.get(f"{CHANGELIST}?flagged_at__isnull=False").status_code == 200
