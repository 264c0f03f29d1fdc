"""What staff approved is exactly what gets paid: the tamper attempts of issue 11, replayed
as POSTs by a staff user holding only `payouts.change_payout`, are all refused, and
nothing reaches Stripe; each action needs its own permission and leaves an audit row."""

from decimal import Decimal

import pytest
from django.utils import timezone

from payouts.audit import audit_rows
from payouts.models import Payout
from tests.conftest import PAYOUT_CHANGELIST as CHANGELIST
from tests.conftest import admin_messages as shown
from tests.conftest import post_payout_action as post_action

pytestmark = pytest.mark.django_db
Status = Payout.Status


def change_url(payout):
    return f"{CHANGELIST}{payout.pk}/change/"


@pytest.fixture
def editor(client, make_staff):
    """A staff user with only payouts.change_payout, signed in."""
    user = make_staff("payouts.change_payout", "payouts.view_payout")
    client.force_login(user)
    return client


@pytest.fixture
def funded(make_creator, stripe_fake):
    def make(balance=10_000_000, **fields):
        creator = make_creator(**fields)
        stripe_fake.add_account(creator.stripe_account_id, balance={"EUR": balance})
        return creator

    return make


def stored(payout):
    return Payout.objects.filter(pk=payout.pk).values().get()


def test_it_refuses_every_tamper_attempt_of_a_change_payout_only_user(
    editor, funded, make_payout, make_user, stripe_fake
):
    approver = make_user(is_staff=True)
    victim = funded()
    other = funded()
    approved = make_payout(
        creator=victim, amount=Decimal("120.00"), currency="EUR", approved_by=approver
    )
    paid = make_payout(creator=victim, status=Status.PAID, amount=Decimal("80.00"))
    flagged = make_payout(
        creator=victim, status=Status.PROCESSING, flagged_at=timezone.now(), claimed_at=None
    )
    before = {payout.pk: stored(payout) for payout in (approved, paid, flagged)}

    # Another creator and 50,000.00 on the approved payout's change form: refused (403).
    tamper = {"creator": other.pk, "amount": "50000.00", "currency": "EUR", "_save": "Save"}
    assert editor.post(change_url(approved), tamper).status_code == 403
    # The same on a PAID payout, and a made-up or empty currency.
    for data in (tamper, {**tamper, "currency": "XXX"}, {**tamper, "currency": ""}):
        assert editor.post(change_url(paid), data).status_code == 403
    # A flagged payout set back to APPROVED through its form.
    back = {**tamper, "status": "APPROVED", "stripe_payout_id": "po_x", "flagged_at": ""}
    assert editor.post(change_url(flagged), back).status_code == 403
    # Paying or approving needs permissions this user does not hold: not offered, and a
    # POST naming the action does nothing.
    listing = editor.get(CHANGELIST).content
    for action in ("pay_approved_now", "approve_payouts", "settle_with_stripe_id", "mark_failed"):
        assert f'value="{action}"'.encode() not in listing
        response = post_action(editor, action, [approved, flagged])
        assert response.status_code == 200 and shown(response) == [], action

    # It should have changed nothing and asked Stripe nothing.
    for payout in (approved, paid, flagged):
        assert stored(payout) == before[payout.pk]
    assert stripe_fake.requests == []
    assert not audit_rows(approved.pk).exists()


def test_it_refuses_a_made_up_or_empty_currency_on_a_request(editor, make_payout):
    payout = make_payout(status=Status.REQUESTED, amount=Decimal("10.00"), currency="EUR")
    form = {"creator": payout.creator_id, "amount": "10.00", "_save": "Save"}

    for currency, error in [("XXX", b"not a currency Stripe pays out in"), ("", b"required")]:
        page = editor.post(change_url(payout), {**form, "currency": currency})
        # It should show the form again with the reason, and keep the payout as it was.
        assert page.status_code == 200 and error in page.content
        assert Payout.objects.get(pk=payout.pk).currency == "EUR"
    page = editor.post(change_url(payout), {**form, "currency": "EUR", "amount": "0"})
    assert b"more than zero" in page.content
    assert Payout.objects.get(pk=payout.pk).amount == Decimal("10.00")


def test_it_lets_an_editor_change_a_request_and_audits_it(editor, make_payout, make_creator):
    payout = make_payout(status=Status.REQUESTED, amount=Decimal("10.00"), currency="EUR")
    other = make_creator()

    response = editor.post(
        change_url(payout),
        {"creator": other.pk, "amount": "12.50", "currency": "usd", "_save": "Save"},
    )

    # It should save the new terms, in capitals, and write who changed what.
    assert response.status_code == 302
    payout.refresh_from_db()
    assert (payout.creator_id, payout.amount, payout.currency) == (
        other.pk,
        Decimal("12.50"),
        "USD",
    )
    row = audit_rows(payout.pk).get()
    assert row.context["action"] == "edit"
    assert row.context["before"]["amount"] == "10.00" and row.context["after"]["amount"] == "12.50"
    assert row.context["staffEmail"] == response.wsgi_request.user.email


def test_it_creates_a_request_from_the_add_form_and_audits_it(client, make_staff, make_creator):
    user = make_staff("payouts.add_payout", "payouts.view_payout")
    client.force_login(user)
    creator = make_creator()

    response = client.post(
        f"{CHANGELIST}add/",
        {"creator": creator.pk, "amount": "42.00", "currency": "eur", "_save": "Save"},
    )

    assert response.status_code == 302
    payout = Payout.objects.get()
    assert (payout.status, payout.currency, payout.amount) == (
        Status.REQUESTED,
        "EUR",
        Decimal("42.00"),
    )
    row = audit_rows(payout.pk).get()
    assert row.context["action"] == "create" and row.context["staffEmail"] == user.email


def test_it_pays_exactly_what_was_approved(client, make_staff, funded, make_payout, stripe_fake):
    approver = make_staff("payouts.approve_payout", "payouts.pay_payout", "payouts.view_payout")
    client.force_login(approver)
    creator = funded()
    payout = make_payout(status=Status.REQUESTED, creator=creator, amount=Decimal("120.00"))

    post_action(client, "approve_payouts", [payout])
    response = post_action(client, "pay_approved_now", [payout])

    # It should send 120.00 EUR — 12000 minor units — to this creator's account, once.
    assert shown(response)[-1] == ("success", "Payouts: 1 sent to Stripe, 0 failed, 0 skipped.")
    [(account, _key, params)] = stripe_fake.creations
    assert account == creator.stripe_account_id
    assert (params["amount"], params["currency"]) == ("12000", "eur")
    payout.refresh_from_db()
    assert payout.approved_by == approver and payout.status == Status.PROCESSING
    # It should leave an audit row per action, pay now with the status it moved.
    actions = list(audit_rows(payout.pk).values_list("context__action", flat=True))
    assert actions == ["pay_now", "approve"]
    paid_now = audit_rows(payout.pk).first()
    assert paid_now.context["before"]["status"] == "APPROVED"
    assert paid_now.context["after"]["status"] == "PROCESSING"
    assert paid_now.context["after"]["stripePayoutId"] == payout.stripe_payout_id


def test_it_refuses_a_staff_member_approving_their_own_payout(
    client, make_staff, make_creator, make_payout
):
    approver = make_staff("payouts.approve_payout", "payouts.view_payout")
    client.force_login(approver)
    own = make_payout(status=Status.REQUESTED, creator=make_creator(user=approver))

    response = post_action(client, "approve_payouts", [own])

    assert Payout.objects.get(pk=own.pk).status == Status.REQUESTED
    assert any("someone else must approve it" in text for _, text in shown(response))


def test_it_cannot_re_approve_a_flagged_payout_by_any_action(client, make_staff, make_payout):
    everything = make_staff(
        "payouts.change_payout",
        "payouts.approve_payout",
        "payouts.pay_payout",
        "payouts.view_payout",
    )
    client.force_login(everything)
    flagged = make_payout(status=Status.PROCESSING, flagged_at=timezone.now())
    before = stored(flagged)

    approve = post_action(client, "approve_payouts", [flagged])
    pay = post_action(client, "pay_approved_now", [flagged])
    form = client.post(change_url(flagged), {"status": "APPROVED", "_save": "Save"})

    assert any("flagged for staff" in text for _, text in shown(approve))
    assert ("warning", "None of the selected payouts is approved.") in shown(pay)
    assert form.status_code == 403
    assert stored(flagged) == before


def test_it_shows_the_payouts_audit_rows_on_its_page(staff_client, make_payout):
    payout = make_payout(status=Status.REQUESTED)
    post_action(staff_client, "approve_payouts", [payout])

    # It should list the row on the (now read-only) page and link to all of them.
    page = staff_client.get(change_url(payout)).content.decode()
    assert "Audit trail" in page and "Approved" in page
    assert "status REQUESTED → APPROVED" in page
    assert f"/admin/payouts/payoutaudit/?payout={payout.pk}" in page
    listing = staff_client.get(f"/admin/payouts/payoutaudit/?payout={payout.pk}")
    assert listing.status_code == 200 and b"status REQUESTED" in listing.content
    assert staff_client.get(f"/admin/payouts/payoutaudit/?q={payout.pk}").status_code == 200


def test_it_deletes_only_requests_and_audits_the_deletion(staff_client, make_payout, admin_user):
    request = make_payout(status=Status.REQUESTED, amount=Decimal("15.00"))
    approved = make_payout(status=Status.APPROVED)

    # A payout past REQUESTED is history: its delete page is refused.
    assert (
        staff_client.post(f"{CHANGELIST}{approved.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    response = staff_client.post(f"{CHANGELIST}{request.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Payout.objects.filter(pk=request.pk).exists()
    assert Payout.objects.filter(pk=approved.pk).exists()
    row = audit_rows(request.pk).get()
    assert row.context["action"] == "delete" and row.context["staffEmail"] == admin_user.email
    assert row.context["before"]["amount"] == "15.00" and row.context["after"]["amount"] is None
