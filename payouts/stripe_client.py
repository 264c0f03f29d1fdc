"""Stripe, for the payout jobs: the only module that imports `stripe`.

One function per API operation, each returning plain data. Every failure is raised as our
`StripeError`, carrying Stripe's `code` and message but never the API key.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import stripe
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from cronlogs.pacing import Pacer
from cronlogs.providers import ErrorKind, ProviderError
from cronlogs.redaction import redact_text

IDEMPOTENCY_CONFLICT = "idempotency_conflict"
# https://docs.stripe.com/error-codes: refusals that blame the request as we wrote it,
# not the payout.
OUR_REQUEST_CODES = frozenset(
    {
        "parameter_unknown",
        "parameter_missing",
        "parameter_invalid_empty",
        "parameter_invalid_integer",
        "parameter_invalid_string_blank",
        "parameter_invalid_string_empty",
        "parameters_exclusive",
        "url_invalid",
        "livemode_mismatch",
        "testmode_charges_only",
    }
)
# Stripe's own default: a signed event older than 5 minutes may be a replayed capture.
# https://docs.stripe.com/webhooks#replay-attacks
WEBHOOK_TOLERANCE_SECONDS = 300
# Stripe's largest page: https://docs.stripe.com/api/pagination
LIST_PAGE_SIZE = 100


class StripeError(ProviderError):
    """A Stripe call that failed, in the shared vocabulary (`cronlogs.providers`).

    - authentication: the key is wrong or revoked, or may not act on the account;
    - invalid: Stripe refused the request (a declined payout, an invalid request, an
      idempotency key first used with other parameters); nothing was created, and a retry
      with the same key would replay the refusal;
    - not_found: no such object;
    - rate_limited / unavailable: network error, timeout, 5xx, 429, an in-flight
      conflict; the request may or may not have been executed, so it must be retried
      with the same idempotency key.
    """

    provider = "Stripe"

    @property
    def declined(self):
        return self.kind in (ErrorKind.INVALID, ErrorKind.NOT_FOUND)

    @property
    def idempotency_conflict(self):
        return self.code == IDEMPOTENCY_CONFLICT

    @property
    def rejects_our_request(self):
        """Stripe could not take the request as we wrote it (a parameter it does not know,
        one missing or of the wrong type, test data in live mode): our fault, not the
        payout's. Stripe keeps no idempotent result for a request it did not start."""
        return self.kind == ErrorKind.INVALID and self.code in OUR_REQUEST_CODES

    @property
    def insufficient_balance(self):
        return self.code in ("balance_insufficient", "insufficient_funds")


@dataclass(frozen=True)
class Account:
    id: str
    payouts_enabled: bool


@dataclass(frozen=True)
class StripePayout:
    id: str
    status: str
    amount: int
    currency: str
    failure_code: str | None = None
    failure_message: str | None = None
    metadata: dict = field(default_factory=dict)
    created: int | None = None  # Unix time, as Stripe gives it.


class InvalidWebhook(Exception):
    """A webhook request that is not a genuine, fresh Stripe event: no or a wrong
    Stripe-Signature, a timestamp outside the tolerance, or a body that is not an event."""


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str
    account: str | None  # The connected account a Connect event is about.
    payout: StripePayout | None  # data.object, when it is a payout.


def require_configured():
    """Raise ImproperlyConfigured, naming the variable, when no Stripe key is set."""
    if not settings.STRIPE_SECRET_KEY:
        raise ImproperlyConfigured(
            "STRIPE_SECRET_KEY is not set; the payout jobs cannot call Stripe. "
            "Set it in the environment (or run with --dry-run)."
        )


def is_configured():
    return bool(settings.STRIPE_SECRET_KEY)


def client():
    require_configured()
    return _client(
        settings.STRIPE_SECRET_KEY,
        settings.STRIPE_API_BASE,
        settings.STRIPE_TIMEOUT_SECONDS,
        settings.STRIPE_MAX_NETWORK_RETRIES,
        settings.STRIPE_MAX_REQUESTS_PER_SECOND,
    )


@lru_cache(maxsize=4)
def _client(api_key, api_base, timeout, max_network_retries, max_requests_per_second):
    # Cached per settings, so one run reuses its HTTP sessions (keep-alive, one per thread)
    # and every thread shares one pacer.
    pacer = Pacer(max_requests_per_second, setting="STRIPE_MAX_REQUESTS_PER_SECOND")
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        # Retries 5xx, 409, 429 and connection errors with backoff; POSTs carry our own
        # idempotency key so a retried creation is replayed, never repeated.
        max_network_retries=max_network_retries,
        http_client=PacedRequestsClient(pacer=pacer, timeout=timeout),
    )


class PacedRequestsClient(stripe.RequestsClient):
    """The SDK's requests client, with every attempt paced under our rate limit and 429s
    retried: Stripe's rate-limit guide asks clients to back off and retry, and the SDK
    alone does not (https://docs.stripe.com/rate-limits#handling-limiting-gracefully)."""

    def __init__(self, *, pacer, **kwargs):
        super().__init__(**kwargs)
        self.pacer = pacer

    def request(self, method, url, headers, post_data=None):
        self.pacer.wait()
        return super().request(method, url, headers, post_data)

    def _should_retry(self, response, api_connection_error, num_retries, max_network_retries):
        if response is not None and response[1] == 429 and num_retries < (max_network_retries or 0):
            # Every thread backs off, not only the one that was told to.
            self.pacer.hold_off(self._sleep_time_seconds(num_retries + 1))
            return True
        return super()._should_retry(
            response, api_connection_error, num_retries, max_network_retries
        )


def retrieve_account(account_id):
    """A connected account and whether it can receive payouts.

    https://docs.stripe.com/api/accounts/retrieve
    """
    with _mapped_errors():
        account = client().v1.accounts.retrieve(account_id).to_dict()
    return Account(id=account["id"], payouts_enabled=bool(account.get("payouts_enabled")))


def retrieve_balance(account_id):
    """The connected account's available balance: {"EUR": 12345, ...} in minor units.

    https://docs.stripe.com/api/balance/balance_retrieve (with the Stripe-Account header)
    """
    with _mapped_errors():
        balance = client().v1.balance.retrieve(options={"stripe_account": account_id}).to_dict()
    available = {}
    for funds in balance.get("available") or []:
        currency = funds["currency"].upper()
        available[currency] = available.get(currency, 0) + int(funds["amount"])
    return available


def create_payout(*, account_id, amount, currency, idempotency_key, metadata=None):
    """Pay `amount` (minor units) from the connected account's balance to its bank.

    The same `idempotency_key` must be sent on every attempt for one payout: Stripe then
    replays the first attempt's result instead of paying again (for at least 24 hours).
    https://docs.stripe.com/api/payouts/create and https://docs.stripe.com/api/idempotent_requests
    """
    params = {"amount": int(amount), "currency": currency.lower()}
    if metadata:
        params["metadata"] = {key: str(value) for key, value in metadata.items()}
    with _mapped_errors():
        payout = client().v1.payouts.create(
            params, options={"stripe_account": account_id, "idempotency_key": idempotency_key}
        )
    return _payout(payout)


def retrieve_payout(payout_id, *, account_id):
    """A payout on a connected account, with its status (pending, in_transit, paid,
    failed, canceled). https://docs.stripe.com/api/payouts/retrieve"""
    with _mapped_errors():
        payout = client().v1.payouts.retrieve(payout_id, options={"stripe_account": account_id})
    return _payout(payout)


def list_payouts(account_id, *, created_gte):
    """Every payout on the connected account created at or after `created_gte` (an aware
    datetime), newest first: one request per page of 100, following `has_more` with
    `starting_after` (the SDK's auto-paging). All pages are read before anything is
    returned, so a failure on page 3 never leaves a caller with a partial list.

    https://docs.stripe.com/api/payouts/list and https://docs.stripe.com/api/pagination/auto
    """
    params = {"created": {"gte": int(created_gte.timestamp())}, "limit": LIST_PAGE_SIZE}
    with _mapped_errors():
        page = client().v1.payouts.list(params, options={"stripe_account": account_id})
        return [_payout(payout) for payout in page.auto_paging_iter()]


def webhook_is_configured():
    return bool(settings.STRIPE_WEBHOOK_SECRET)


def parse_webhook(payload, signature):
    """The event in a webhook request, once its Stripe-Signature header is verified
    against STRIPE_WEBHOOK_SECRET (HMAC over the timestamp and the raw body, at most
    WEBHOOK_TOLERANCE_SECONDS old). Raises InvalidWebhook otherwise.

    https://docs.stripe.com/webhooks#verify-events
    """
    if not webhook_is_configured():
        raise ImproperlyConfigured("STRIPE_WEBHOOK_SECRET is not set; webhooks cannot be verified.")
    try:
        event = stripe.Webhook.construct_event(
            payload,
            signature,
            settings.STRIPE_WEBHOOK_SECRET,
            tolerance=WEBHOOK_TOLERANCE_SECONDS,
            api_key=settings.STRIPE_SECRET_KEY or None,
        )
    except stripe.SignatureVerificationError as exc:
        raise InvalidWebhook(redact_text(exc.user_message or "invalid signature")) from None
    except ValueError as exc:  # not JSON, not UTF-8, not an event
        raise InvalidWebhook(f"the body is not a Stripe event: {redact_text(str(exc))}") from None
    data = event.to_dict()
    if not data.get("id") or not data.get("type"):
        raise InvalidWebhook("the body is not a Stripe event: no id or type")
    obj = (data.get("data") or {}).get("object") or {}
    payout = obj if isinstance(obj, dict) and obj.get("object") == "payout" else None
    return WebhookEvent(
        id=str(data["id"]),
        type=str(data["type"]),
        account=data.get("account"),
        payout=_payout(payout) if payout and payout.get("id") else None,
    )


def _shallow(obj):
    # A shallow copy: the SDK's recursive to_dict() costs more than the rest of
    # reconciling a page of payouts.
    if obj is None:
        return {}
    return obj.to_dict(recursive=False) if hasattr(obj, "to_dict") else dict(obj)


def _payout(payout):
    payout = _shallow(payout)
    metadata = _shallow(payout.get("metadata"))
    return StripePayout(
        id=payout["id"],
        status=payout.get("status") or "",
        amount=int(payout.get("amount") or 0),
        currency=(payout.get("currency") or "").upper(),
        failure_code=payout.get("failure_code"),
        failure_message=payout.get("failure_message"),
        metadata={str(key): str(value) for key, value in metadata.items()},
        created=payout.get("created"),
    )


@contextmanager
def _mapped_errors():
    """Turn the SDK's exceptions into our StripeError, without the key in any text."""
    try:
        yield
    except stripe.StripeError as exc:
        raise _translate(exc) from None


def _translate(exc):
    code = getattr(exc, "code", None)
    if isinstance(exc, stripe.IdempotencyError):
        kind, code = ErrorKind.INVALID, IDEMPOTENCY_CONFLICT
    elif isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
        kind = ErrorKind.AUTHENTICATION
    elif isinstance(exc, stripe.RateLimitError):
        kind = ErrorKind.RATE_LIMITED
    elif isinstance(exc, (stripe.CardError, stripe.InvalidRequestError)):
        kind = ErrorKind.NOT_FOUND if exc.http_status == 404 else ErrorKind.INVALID
    else:
        # APIConnectionError, and APIError: a 5xx, or a 409 (the same idempotency key is
        # still being processed). Stripe may yet act on the request: the outcome is
        # unknown, never a refusal, so the payout stays claimed and is re-sent with its key.
        kind = ErrorKind.UNAVAILABLE
    message = redact_text(exc.user_message or type(exc).__name__)
    return StripeError(message, kind=kind, code=code, http_status=exc.http_status)
