"""Daily and Stripe errors speak one vocabulary: kind, retryable, redacted message."""

import pytest

from bookings import daily
from bookings.daily import DailyError
from cronlogs.providers import ErrorKind, ProviderError, kind_for_status
from payouts import stripe_client
from payouts.stripe_client import StripeError
from tests.conftest import DAILY_TEST_API_KEY, DAILY_TEST_API_URL

STATUSES = [
    (401, ErrorKind.AUTHENTICATION, False),
    (403, ErrorKind.AUTHENTICATION, False),
    (404, ErrorKind.NOT_FOUND, False),
    (400, ErrorKind.INVALID, False),
    (429, ErrorKind.RATE_LIMITED, True),
    (500, ErrorKind.UNAVAILABLE, True),
    (503, ErrorKind.UNAVAILABLE, True),
]


def assert_named(error, cls, status, kind, retryable):
    assert isinstance(error, cls)
    assert (error.kind, error.retryable, error.http_status) == (kind, retryable, status)


@pytest.mark.parametrize(("status", "kind", "retryable"), STATUSES)
def test_daily_names_an_http_answer_in_the_shared_vocabulary(mocked_daily, status, kind, retryable):
    mocked_daily.get(f"{DAILY_TEST_API_URL}/rooms/r", status=status, json={"error": "x"})
    if status == 404:
        assert daily.room_exists("r") is False  # A missing room is an answer, not an error.
        return
    with pytest.raises(ProviderError) as caught:
        daily.room_exists("r")
    assert_named(caught.value, DailyError, status, kind, retryable)


@pytest.mark.parametrize(("status", "kind", "retryable"), STATUSES)
def test_stripe_names_an_http_answer_in_the_shared_vocabulary(
    stripe_fake, settings, status, kind, retryable
):
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    stripe_fake.add_account("acct_1")
    error = {"type": "api_error", "message": "no"}
    stripe_fake.fail_next("GET", r"^/v1/balance$", status=status, error=error)

    with pytest.raises(ProviderError) as caught:
        stripe_client.retrieve_balance("acct_1")

    assert_named(caught.value, StripeError, status, kind, retryable)


def test_the_mapping_of_statuses_is_one_table():
    for status, kind, _ in STATUSES:
        assert kind_for_status(status) == kind
    assert kind_for_status(None) == ErrorKind.UNAVAILABLE


def test_no_key_reaches_an_error_message(settings):
    settings.DAILY_API_KEY = DAILY_TEST_API_KEY
    error = DailyError(f"echoed {DAILY_TEST_API_KEY} back", kind="invalid", http_status=400)

    assert DAILY_TEST_API_KEY not in str(error) and "[REDACTED]" in error.message
