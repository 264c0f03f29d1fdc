"""One vocabulary for what the outside world answers, whichever provider said it.

Every client of an outside service (`bookings.daily`, `payouts.stripe_client`) raises a
subclass of `ProviderError` with a `kind` from `ErrorKind`, so that the runner and the jobs
can tell a revoked key (stop the run), a provider that is down (the item fails and is
retried later) and a request refused for its own reason (the item's own result) apart
without knowing who the provider was. Messages are redacted: no key ever appears in one.
"""

from enum import StrEnum

from cronlogs.redaction import redact_text

MESSAGE_MAX_CHARS = 300


class ErrorKind(StrEnum):
    # The provider refused our credentials (401, 403): nothing works until an operator
    # fixes the key, so the run stops at the first one.
    AUTHENTICATION = "authentication"
    # What we asked about does not exist (404).
    NOT_FOUND = "not_found"
    # Too many requests (429), still so after the client's retries.
    RATE_LIMITED = "rate_limited"
    # No usable answer: connection refused, timeout, 5xx.
    UNAVAILABLE = "unavailable"
    # The provider refused this request for its own reason (other 4xx, a declined payout).
    INVALID = "invalid"


RETRYABLE_KINDS = frozenset({ErrorKind.RATE_LIMITED, ErrorKind.UNAVAILABLE})


class ProviderError(Exception):
    """A call to an outside service failed.

    `kind` is an ErrorKind, `message` the provider's own text (redacted, shortened),
    `http_status` the status it answered (None when no answer came back) and `code`
    its machine-readable error code, when it gave one.
    """

    provider = "provider"

    def __init__(self, message, *, kind, http_status=None, code=None):
        self.kind = ErrorKind(kind)
        self.message = redact_text(str(message))[:MESSAGE_MAX_CHARS]
        self.http_status = http_status
        self.code = code
        super().__init__(self.message)

    @property
    def retryable(self):
        """True if the same call may well succeed later (rate limited or unavailable)."""
        return self.kind in RETRYABLE_KINDS

    @property
    def is_authentication(self):
        return self.kind == ErrorKind.AUTHENTICATION

    def __str__(self):
        status = f" {self.http_status}" if self.http_status else ""
        code = f" [{self.code}]" if self.code else ""
        return f"{self.provider} {self.kind.replace('_', ' ')}{status}{code}: {self.message}"


def kind_for_status(status):
    """The ErrorKind of an HTTP error status."""
    if status in (401, 403):
        return ErrorKind.AUTHENTICATION
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status is None or status >= 500:
        return ErrorKind.UNAVAILABLE
    return ErrorKind.INVALID
