"""The Stripe client module and money conversions."""

from decimal import Decimal

import pytest
import requests
import responses
from django.core.exceptions import ImproperlyConfigured

from payouts import stripe_client
from payouts.money import format_amount, from_minor_units, payable_amount, to_minor_units
from payouts.stripe_client import StripeError
from tests.stripe_fake import TEST_SECRET_KEY


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("12.34", "EUR", 1234),
        ("0.01", "usd", 1),
        ("1000", "JPY", 1000),
        ("1000.00", "JPY", 1000),
        ("50000", "KRW", 50000),
        ("12.34", "BHD", 12340),
        ("99999999.99", "EUR", 9999999999),
    ],
)
def test_it_converts_amounts_to_minor_units_exactly(amount, currency, minor):
    # It should give Stripe's integer in the currency's smallest unit, and come back exactly.
    assert to_minor_units(Decimal(amount), currency) == minor
    assert from_minor_units(minor, currency) == Decimal(amount)


def test_it_refuses_an_amount_the_currency_cannot_carry():
    # It should never round money silently: there is no half yen.
    with pytest.raises(ValueError, match="10.50 JPY has more decimals than JPY allows"):
        to_minor_units(Decimal("10.50"), "JPY")
    with pytest.raises(ValueError):
        to_minor_units(Decimal("1.005"), "EUR")


def test_it_floors_a_balance_to_what_a_payout_can_carry():
    # It should pay whole units where Stripe requires them and never more than available.
    assert payable_amount(12345, "BHD") == Decimal("12.34")
    assert payable_amount(123456, "HUF") == Decimal("1234")
    assert payable_amount(5000, "JPY") == Decimal("5000")
    assert payable_amount(1999, "EUR") == Decimal("19.99")


def test_it_formats_amounts_with_two_decimals():
    assert format_amount(Decimal("5420.5")) == "5420.50"
    assert format_amount(Decimal("1000")) == "1000.00"
    assert format_amount(Decimal("0")) == "0.00"


def test_it_fails_naming_the_variable_when_the_key_is_missing(settings):
    settings.STRIPE_SECRET_KEY = ""

    # It should say which setting to fix, before any request is made.
    with pytest.raises(ImproperlyConfigured, match="STRIPE_SECRET_KEY is not set"):
        stripe_client.retrieve_balance("acct_1")


def test_it_reads_an_account_and_its_available_balance(stripe_fake):
    stripe_fake.add_account("acct_1", balance={"EUR": 12_345, "JPY": 500}, payouts_enabled=False)

    account = stripe_client.retrieve_account("acct_1")
    balance = stripe_client.retrieve_balance("acct_1")

    # It should ask about the connected account (Stripe-Account header) and return plain data.
    assert account == stripe_client.Account(id="acct_1", payouts_enabled=False)
    assert balance == {"EUR": 12_345, "JPY": 500}
    assert stripe_fake.requests[-1] == ("GET", "/v1/balance", "acct_1", None)


def test_it_creates_a_payout_with_our_idempotency_key_on_the_connected_account(stripe_fake):
    stripe_fake.add_account("acct_1", balance={"EUR": 10_000})

    payout = stripe_client.create_payout(
        account_id="acct_1",
        amount=2_500,
        currency="EUR",
        idempotency_key="callastar-payout-7",
        metadata={"payoutId": 7},
    )

    # It should send our key and the account, in lowercase currency and minor units.
    assert payout.id.startswith("po_") and payout.status == "pending"
    assert (payout.amount, payout.currency) == (2_500, "EUR")
    assert stripe_fake.payout_posts() == [("POST", "/v1/payouts", "acct_1", "callastar-payout-7")]
    assert stripe_fake.creations[0][2] == {
        "amount": "2500",
        "currency": "eur",
        "metadata[payoutId]": "7",
    }
    assert stripe_fake.balance("acct_1", "EUR") == 7_500


def test_it_replays_a_creation_sent_twice_with_the_same_key(stripe_fake):
    stripe_fake.add_account("acct_1", balance={"EUR": 10_000})
    send = dict(account_id="acct_1", amount=1_000, currency="EUR", idempotency_key="k-1")

    first = stripe_client.create_payout(**send)
    second = stripe_client.create_payout(**send)

    # It should get the same payout back; Stripe (the fake) executed one creation.
    assert first == second
    assert len(stripe_fake.creations) == 1
    assert stripe_fake.balance("acct_1", "EUR") == 9_000

    # It should surface a key reused with other parameters as a conflict for a person.
    with pytest.raises(StripeError) as caught:
        stripe_client.create_payout(**{**send, "amount": 2_000})
    assert caught.value.idempotency_conflict and caught.value.kind == "invalid"


def test_it_retries_a_500_with_the_same_idempotency_key(stripe_fake):
    stripe_fake.add_account("acct_1", balance={"EUR": 10_000})
    stripe_fake.fail_next("POST", r"^/v1/payouts$", status=500)

    payout = stripe_client.create_payout(
        account_id="acct_1", amount=1_000, currency="EUR", idempotency_key="k-500"
    )

    # It should have retried once, with the same key, and paid once.
    assert payout.status == "pending"
    assert [r[3] for r in stripe_fake.payout_posts()] == ["k-500", "k-500"]
    assert len(stripe_fake.creations) == 1


def test_it_treats_a_409_for_a_key_still_in_use_as_an_unknown_outcome(stripe_fake, settings):
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    stripe_fake.add_account("acct_1", balance={"EUR": 10_000})
    stripe_fake.fail_next(
        "POST",
        r"^/v1/payouts$",
        status=409,
        error={
            "type": "invalid_request_error",
            "code": "idempotency_key_in_use",
            "message": "There is currently another in-progress request using this key.",
        },
    )

    with pytest.raises(StripeError) as caught:
        stripe_client.create_payout(
            account_id="acct_1", amount=1_000, currency="EUR", idempotency_key="k-409"
        )

    # It should not call it a refusal: the other request may still pay.
    assert caught.value.kind == "unavailable" and not caught.value.declined
    assert caught.value.http_status == 409


def test_it_maps_a_declined_request_to_stripes_code_and_message(stripe_fake):
    stripe_fake.add_account("acct_1", balance={"EUR": 10_000})
    stripe_fake.decline_next_payout(
        "Your card was declined.", code="card_declined", status=402, type="card_error"
    )

    with pytest.raises(StripeError) as caught:
        stripe_client.create_payout(
            account_id="acct_1", amount=1_000, currency="EUR", idempotency_key="k-card"
        )

    # It should keep Stripe's code and message and say nothing was created.
    error = caught.value
    assert error.declined and error.code == "card_declined" and error.http_status == 402
    assert error.message == "Your card was declined." and error.kind == "invalid"
    assert "card_declined" in str(error) and "Your card was declined." in str(error)
    assert stripe_fake.creations == []


def test_it_recognises_stripes_insufficient_balance(stripe_fake):
    stripe_fake.add_account("acct_1", balance={"EUR": 100})

    with pytest.raises(StripeError) as caught:
        stripe_client.create_payout(
            account_id="acct_1", amount=1_000, currency="EUR", idempotency_key="k-poor"
        )

    assert caught.value.declined and caught.value.insufficient_balance


def test_it_never_puts_the_key_in_an_error(stripe_fake, settings):
    stripe_fake.fail_next(
        "GET",
        r"^/v1/balance$",
        status=401,
        error={"type": "invalid_request_error", "message": f"Invalid API Key: {TEST_SECRET_KEY}"},
    )

    with pytest.raises(StripeError) as caught:
        stripe_client.retrieve_balance("acct_1")

    # It should classify a rejected key as such and mask it in every text it carries.
    assert caught.value.kind == "authentication"
    assert TEST_SECRET_KEY not in str(caught.value)
    assert TEST_SECRET_KEY not in caught.value.message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_it_maps_a_connection_failure_to_unavailable(settings):
    settings.STRIPE_SECRET_KEY = TEST_SECRET_KEY
    settings.STRIPE_API_BASE = "https://api.stripe.test"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0

    with responses.RequestsMock() as mock:
        mock.get(
            "https://api.stripe.test/v1/accounts/acct_1",
            body=requests.ConnectionError("connection refused"),
        )
        with pytest.raises(StripeError) as caught:
            stripe_client.retrieve_account("acct_1")

    # It should say the outcome is unknown, so callers retry with the same key.
    assert caught.value.kind == "unavailable"
