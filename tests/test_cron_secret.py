"""Which CRON_SECRET values can ever match a request, and which are weak."""

import pytest
from django.test import RequestFactory

from cronlogs.cron_secret import MAX_SECRET_LENGTH, secret_is_usable, secret_weaknesses
from cronlogs.views import secret_matches

STRONG = "Zq3v9T_xR2mK8pLw4nB7cY1dF6gH0jS5"  # 32 characters


@pytest.mark.parametrize(
    "secret",
    [STRONG, "short", "two words inside", "x" * MAX_SECRET_LENGTH, "!#$%&'*+-.^_`|~"],
)
def test_it_calls_a_secret_usable_when_a_header_can_carry_it(secret):
    assert secret_is_usable(secret)


@pytest.mark.parametrize(
    "secret",
    [
        "",
        f" {STRONG}",
        f"{STRONG}\n",
        "x" * (MAX_SECRET_LENGTH + 1),
        f"{STRONG}é",
        f"{STRONG}€",
        f"{STRONG}\x00",
        f"tab\tinside{STRONG}",
        f"{STRONG}\x7f",
    ],
)
def test_it_calls_a_secret_unusable_when_no_request_can_match_it(secret):
    assert not secret_is_usable(secret)


def test_it_agrees_with_the_endpoint_on_whitespace_and_length(settings):
    for secret in [STRONG, "two words inside", "x" * 512, f" {STRONG}", "x" * 513]:
        requests = [
            RequestFactory().post("/", headers={"X-Cron-Secret": secret}),
            RequestFactory().post("/", headers={"Authorization": f"Bearer {secret}"}),
        ]
        # It should call usable exactly the secrets a request presenting them matches.
        for request in requests:
            assert secret_matches(request, secret) == secret_is_usable(secret), repr(secret)


def test_it_names_each_weakness_of_a_secret():
    # It should find nothing wrong with a long random ASCII secret.
    assert secret_weaknesses(STRONG) == []
    assert secret_weaknesses("x" * 31) == ["it is shorter than 32 characters"]
    assert secret_weaknesses(f"{STRONG} more") == ["it contains whitespace"]
    assert secret_weaknesses(f"{STRONG}é") == ["it contains non-ASCII characters"]
    assert secret_weaknesses(f"{STRONG}\x01") == ["it contains control characters"]
    assert secret_weaknesses("x" * 513) == ["it is longer than 512 characters"]
    assert secret_weaknesses("a b") == [
        "it is shorter than 32 characters",
        "it contains whitespace",
    ]
