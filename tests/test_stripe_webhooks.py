"""POST /api/stripe/webhook: signed Connect payout events settle our payouts, once each.

Signatures are made with the official library's own helper
(`stripe.WebhookSignature.generate_signature_header`), never by hand.
"""

import json
import time
from decimal import Decimal

import pytest
import stripe
from django.test import Client

from cronlogs.models import Log
from payouts.models import Payout, StripeEvent

pytestmark = pytest.mark.django_db
Status = Payout.Status
URL = "/api/stripe/webhook"
SECRET = "whsec_test_0123456789abcdefghijklmnop"


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET


@pytest.fixture
def csrf_client():
    # Stripe sends no CSRF token: the endpoint must not need one.
    return Client(enforce_csrf_checks=True)


def deliver(client, event, *, secret=SECRET, timestamp=None, header=None):
    payload = event if isinstance(event, str) else json.dumps(event)
    if header is None:
        header = stripe.WebhookSignature.generate_signature_header(
            payload, secret, timestamp=timestamp
        )
    extra = {"HTTP_STRIPE_SIGNATURE": header} if header else {}
    return client.post(URL, payload, content_type="application/json", **extra)


@pytest.fixture
def in_flight(make_creator, make_payout, stripe_fake):
    """A PROCESSING payout of 120.00 EUR whose Stripe payout exists, with its id recorded."""

    def make(status="pending", record=True, **fields):
        creator = make_creator()
        stripe_fake.add_account(creator.stripe_account_id)
        payout = make_payout(
            creator=creator, status=Status.PROCESSING, amount=Decimal("120.00"), **fields
        )
        stripe_id = stripe_fake.add_payout(
            creator.stripe_account_id,
            amount=12_000,
            status=status,
            metadata={"payoutId": payout.pk, "creatorId": creator.pk},
        )
        if record:
            Payout.objects.filter(pk=payout.pk).update(stripe_payout_id=stripe_id)
            payout.refresh_from_db()
        return payout, stripe_id

    return make


def test_it_settles_a_paid_payout_once_and_a_replay_changes_nothing(
    csrf_client, in_flight, stripe_fake
):
    payout, stripe_id = in_flight()
    stripe_fake.set_payout_status(stripe_id, "paid")
    event = stripe_fake.event("payout.paid", stripe_id)

    response = deliver(csrf_client, event)

    # It should answer 200 in JSON, settle the payout and log it as polling does.
    assert response.status_code == 200
    assert response.json() == {
        "received": True,
        "eventId": event["id"],
        "type": "payout.paid",
        "outcome": "settled",
        "detail": f"payout #{payout.pk} is now PAID",
        "payoutId": payout.pk,
    }
    payout.refresh_from_db()
    assert payout.status == Status.PAID and payout.paid_at is not None
    rows = Log.objects.filter(type="PAYOUT_SUCCESS", context__payoutId=payout.pk)
    assert list(rows.values_list("context__event", flat=True)) == ["paid"]
    paid_at = payout.paid_at

    # The same event again (Stripe redelivers): 200, and nothing changes.
    for _ in range(2):
        replay = deliver(csrf_client, event)
        assert replay.status_code == 200 and replay.json()["outcome"] == "replayed"
    payout.refresh_from_db()
    assert payout.paid_at == paid_at and rows.count() == 1
    assert StripeEvent.objects.get().event_id == event["id"]
    # It should never have called Stripe: the signed event is enough.
    assert stripe_fake.requests == []


def test_it_fails_a_payout_stripe_reports_failed_with_stripes_reason(
    client, in_flight, stripe_fake
):
    payout, stripe_id = in_flight()
    stripe_fake.set_payout_status(
        stripe_id, "failed", failure_code="account_closed", failure_message="Account closed."
    )

    response = deliver(client, stripe_fake.event("payout.failed", stripe_id))

    assert response.json()["outcome"] == "settled"
    payout.refresh_from_db()
    assert payout.status == Status.FAILED
    assert payout.failure_reason == "Account closed. (account_closed)"
    assert Log.objects.filter(type="PAYOUT_ERROR", context__payoutId=payout.pk).count() == 1


@pytest.mark.parametrize(
    "sign",
    [
        {"secret": "whsec_some_other_endpoints_secret"},
        {"timestamp": int(time.time()) - 301},  # outside the 300 s tolerance
        {"header": "t=1700000000,v1=" + "0" * 64},
        {"header": "not a signature"},
        {"header": ""},  # no Stripe-Signature at all
    ],
)
def test_it_refuses_a_bad_or_stale_signature_with_400_and_changes_nothing(
    client, in_flight, stripe_fake, sign
):
    payout, stripe_id = in_flight()
    stripe_fake.set_payout_status(stripe_id, "paid")

    response = deliver(client, stripe_fake.event("payout.paid", stripe_id), **sign)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_webhook"
    assert Payout.objects.get(pk=payout.pk).status == Status.PROCESSING
    assert not StripeEvent.objects.exists()
    assert not Log.objects.exists()


def test_it_accepts_a_signature_just_inside_the_tolerance(client, in_flight, stripe_fake):
    payout, stripe_id = in_flight()
    stripe_fake.set_payout_status(stripe_id, "paid")

    response = deliver(
        client, stripe_fake.event("payout.paid", stripe_id), timestamp=int(time.time()) - 240
    )

    assert response.status_code == 200
    assert Payout.objects.get(pk=payout.pk).status == Status.PAID


def test_it_ignores_an_event_about_a_payout_on_another_account(
    client, in_flight, make_creator, stripe_fake
):
    payout, stripe_id = in_flight()
    stripe_fake.set_payout_status(stripe_id, "paid")
    intruder = make_creator()

    response = deliver(
        client, stripe_fake.event("payout.paid", stripe_id, account=intruder.stripe_account_id)
    )

    # It should answer 200 (nothing for Stripe to retry) and leave the payout alone.
    assert response.status_code == 200 and response.json()["outcome"] == "ignored"
    assert intruder.stripe_account_id in response.json()["detail"]
    assert Payout.objects.get(pk=payout.pk).status == Status.PROCESSING
    assert not Log.objects.filter(type="PAYOUT_SUCCESS").exists()
    # ...and say so in a log row: Stripe sent it, so something is off.
    row = Log.objects.get(type="PAYOUT_ERROR")
    assert row.level == "ERROR" and row.context["eventAccount"] == intruder.stripe_account_id


def test_it_tells_staff_when_stripe_fails_a_payout_we_hold_as_paid(client, in_flight, stripe_fake):
    payout, stripe_id = in_flight()
    Payout.objects.filter(pk=payout.pk).update(status=Status.PAID)
    stripe_fake.set_payout_status(
        stripe_id, "failed", failure_code="account_closed", failure_message="Account closed."
    )

    response = deliver(client, stripe_fake.event("payout.failed", stripe_id))

    # It should keep our row as it is, and raise the contradiction with staff.
    assert response.status_code == 200 and response.json()["outcome"] == "contradiction"
    assert Payout.objects.get(pk=payout.pk).status == Status.PAID
    row = Log.objects.get(type="PAYOUT_ERROR")
    assert row.level == "CRITICAL" and row.context["needsReview"] is True
    assert f"is PAID but Stripe payout {stripe_id} is failed" in row.context["error"]


def test_it_ignores_other_event_types_and_payouts_it_does_not_know(client, stripe_fake):
    stripe_fake.add_account("acct_stranger")
    stranger = stripe_fake.add_payout("acct_stranger", amount=500, status="paid")

    other_type = deliver(client, stripe_fake.event("payout.created", stranger))
    unknown = deliver(client, stripe_fake.event("payout.paid", stranger))

    assert other_type.status_code == 200 and other_type.json()["outcome"] == "ignored"
    assert "payout.created is not an event" in other_type.json()["detail"]
    assert unknown.status_code == 200 and unknown.json()["outcome"] == "ignored"
    assert "not one of ours" in unknown.json()["detail"]
    assert not Log.objects.exists()


def test_it_records_and_settles_a_payout_whose_stripe_id_we_never_stored(
    client, in_flight, stripe_fake
):
    # A crash between Stripe's answer and our write: the event finds it by payoutId.
    payout, stripe_id = in_flight(status="paid", record=False)

    response = deliver(client, stripe_fake.event("payout.paid", stripe_id))

    assert response.json()["outcome"] == "settled"
    payout.refresh_from_db()
    assert (payout.stripe_payout_id, payout.status) == (stripe_id, Status.PAID)


def test_it_refuses_a_body_that_is_not_an_event(client):
    for body in ("not json", json.dumps({"object": "list"})):
        response = deliver(client, body)
        assert response.status_code == 400, body
        assert response.json()["error"] == "invalid_webhook"


def test_it_answers_503_without_a_secret_and_emails_nobody(client, settings, mailoutbox):
    settings.STRIPE_WEBHOOK_SECRET = ""
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.DEBUG = False

    response = deliver(client, {"id": "evt_1", "type": "payout.paid"}, secret="whsec_x")

    assert response.status_code == 503
    assert response.json()["error"] == "not_configured"
    assert mailoutbox == []


def test_it_serves_only_post(client):
    response = client.get(URL)
    assert response.status_code == 405 and response["Allow"] == "POST"
