"""A small fake of the Stripe API endpoints the payout jobs use.

It keeps connected accounts (payouts_enabled, available balance), creates payouts and
honours `Idempotency-Key` as Stripe does: the same key with the same parameters replays
the first response; the same key with other parameters is a 400 idempotency error.
Tests can inject failures (500s, card or invalid-request errors) that happen before the
endpoint runs, so, like a failure in front of Stripe's API, they are not remembered
under the key.

It lists a connected account's payouts as Stripe does (`GET /v1/payouts`: newest first,
`limit`, `starting_after`, `created[gte]`, `has_more`), so the SDK's auto-paging walks its
pages, and builds the events Stripe would push (`event`) for webhook tests to sign.

Serve it through `responses` (`mocked_stripe`) in the test process, or over real HTTP on
127.0.0.1 (`served_stripe`) for child processes.
"""

import itertools
import json
import re
import threading
import time
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlsplit

import responses

from tests.local_http import serving_json

TEST_SECRET_KEY = "sk_test_fakeStripeKey0123456789"


class FakeStripe:
    def __init__(self, api_key=TEST_SECRET_KEY):
        self.api_key = api_key
        self.accounts = {}
        self.payouts = {}
        self.requests = []  # (method, path, stripe account, idempotency key)
        self.creations = []  # (account, idempotency key, params) for each payout executed
        self._saved = {}  # (account, key) -> (params, status, body)
        self._injected = []  # [method, path regex, status, body, times left]
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.clock = time.time  # What "created" says on a payout made through the API.
        self._by_account = {}  # account -> its payouts, so a list call reads only those

    # --- what tests set up ------------------------------------------------------------

    def add_account(self, account_id, *, balance=None, payouts_enabled=True):
        """`balance` in minor units by currency: {"EUR": 10_000}."""
        self.accounts[account_id] = {
            "payouts_enabled": payouts_enabled,
            "balance": {cur.lower(): amount for cur, amount in (balance or {}).items()},
        }

    def fail_next(self, method, path, *, status=500, error=None, times=1):
        """Answer the next `times` requests to `path` (a regex) with an error."""
        error = error or {"type": "api_error", "message": "An unknown error occurred"}
        self._injected.append([method.upper(), re.compile(path), status, {"error": error}, times])

    def decline_next_payout(self, message, *, code, status=400, type="invalid_request_error"):
        error = {"type": type, "code": code, "message": message}
        self.fail_next("POST", r"^/v1/payouts$", status=status, error=error)

    def set_payout_status(self, payout_id, status, *, failure_code=None, failure_message=None):
        self.payouts[payout_id].update(
            status=status, failure_code=failure_code, failure_message=failure_message
        )

    def add_payout(
        self, account, *, amount, currency="eur", status="pending", metadata=None, created=None
    ):
        """A payout that exists on Stripe without us having asked for it through the API
        (made in the dashboard, or by another system); returns its id."""
        payout_id = f"po_fake{next(self._ids):06d}"
        self.payouts[payout_id] = self._payout_object(
            payout_id,
            account,
            amount=amount,
            currency=currency.lower(),
            status=status,
            metadata={key: str(value) for key, value in (metadata or {}).items()},
            created=int(self.clock() if created is None else created),
        )
        return payout_id

    def event(self, type, payout_id, *, account=None, event_id=None):
        """The event Stripe would push about one of its payouts (a Connect event carries the
        connected account's id in `account`)."""
        payout = self.payouts[payout_id]
        return {
            "id": event_id or f"evt_fake{next(self._ids):06d}",
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(self.clock()),
            "type": type,
            "account": account or payout["account"],
            "livemode": False,
            "pending_webhooks": 1,
            "data": {"object": self._public(payout)},
        }

    # --- what tests read ----------------------------------------------------------------

    def balance(self, account_id, currency):
        return self.accounts[account_id]["balance"].get(currency.lower(), 0)

    def payout_posts(self):
        return [r for r in self.requests if r[0] == "POST" and r[1] == "/v1/payouts"]

    def payout_lists(self):
        return [r for r in self.requests if r[0] == "GET" and r[1] == "/v1/payouts"]

    def creations_by_key(self):
        counts = {}
        for _account, key, _params in self.creations:
            counts[key] = counts.get(key, 0) + 1
        return counts

    # --- the API ------------------------------------------------------------------------

    def handle(self, method, url, headers, body):
        """Return (status, headers, json body) for one request."""
        parts = urlsplit(url)
        path = parts.path
        headers = {name.lower(): value for name, value in headers.items()}
        account = headers.get("stripe-account")
        key = headers.get("idempotency-key")
        params = dict(parse_qsl(body or "", keep_blank_values=True))
        if method == "GET":
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
        with self._lock:
            self.requests.append((method, path, account, key))
            if headers.get("authorization") != f"Bearer {self.api_key}":
                return self._error(401, "invalid_request_error", "Invalid API Key provided.")
            injected = self._take_injected(method, path)
            if injected:
                return injected
            if method == "POST" and key:
                saved = self._saved.get((account, key))
                if saved and saved[0] != params:
                    return self._error(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with.",
                    )
                if saved:
                    return saved[1], {"Idempotent-Replayed": "true"}, saved[2]
            status, body = self._route(method, path, account, key, params)
            if method == "POST" and key:
                self._saved[(account, key)] = (params, status, body)
            return status, {}, body

    def _route(self, method, path, account, key, params):
        if method == "GET" and (match := re.fullmatch(r"/v1/accounts/([\w]+)", path)):
            found = self.accounts.get(match[1])
            if found is None:
                return self._body(
                    404, "invalid_request_error", "No such account", "resource_missing"
                )
            return 200, {
                "id": match[1],
                "object": "account",
                "payouts_enabled": found["payouts_enabled"],
            }
        if account not in self.accounts:
            return self._body(403, "invalid_request_error", "No access to this account")
        if method == "GET" and path == "/v1/balance":
            available = [
                {"amount": amount, "currency": cur, "source_types": {"card": amount}}
                for cur, amount in self.accounts[account]["balance"].items()
            ]
            return 200, {"object": "balance", "available": available, "pending": []}
        if method == "POST" and path == "/v1/payouts":
            return self._create_payout(account, key, params)
        if method == "GET" and path == "/v1/payouts":
            return self._list_payouts(account, params)
        if method == "GET" and (match := re.fullmatch(r"/v1/payouts/(\w+)", path)):
            payout = self.payouts.get(match[1])
            if payout is None or payout["account"] != account:
                return self._body(
                    404, "invalid_request_error", "No such payout", "resource_missing"
                )
            return 200, self._public(payout)
        return self._body(404, "invalid_request_error", f"Unrecognized request URL ({path})")

    def _create_payout(self, account, key, params):
        amount, currency = int(params["amount"]), params["currency"]
        balance = self.accounts[account]["balance"]
        if balance.get(currency, 0) < amount:
            return self._body(
                400,
                "invalid_request_error",
                "You have insufficient funds in your Stripe account for this transfer.",
                "balance_insufficient",
            )
        balance[currency] -= amount
        payout_id = f"po_fake{next(self._ids):06d}"
        self.payouts[payout_id] = self._payout_object(
            payout_id,
            account,
            amount=amount,
            currency=currency,
            status="pending",
            metadata={k[9:-1]: v for k, v in params.items() if k.startswith("metadata[")},
            created=int(self.clock()),
        )
        self.creations.append((account, key, params))
        return 200, self._public(self.payouts[payout_id])

    def _list_payouts(self, account, params):
        # https://docs.stripe.com/api/pagination: newest first; a page starts after the
        # object named by `starting_after`; `has_more` says whether another page follows.
        try:
            limit = int(params.get("limit", 10))
            since = int(params.get("created[gte]", 0))
        except ValueError:
            return self._body(400, "invalid_request_error", "Invalid integer")
        if not 1 <= limit <= 100:
            return self._body(400, "invalid_request_error", "limit must be between 1 and 100")
        mine = sorted(
            (p for p in self._by_account.get(account, ()) if p["created"] >= since),
            key=lambda p: (p["created"], p["id"]),
            reverse=True,
        )
        after = params.get("starting_after")
        if after:
            ids = [p["id"] for p in mine]
            if after not in ids:
                return self._body(
                    400, "invalid_request_error", f"No such payout: '{after}'", "resource_missing"
                )
            mine = mine[ids.index(after) + 1 :]
        page = mine[:limit]
        return 200, {
            "object": "list",
            "url": "/v1/payouts",
            "has_more": len(mine) > limit,
            "data": [self._public(p) for p in page],
        }

    def _payout_object(self, payout_id, account, *, amount, currency, status, metadata, created):
        payout = {
            "id": payout_id,
            "object": "payout",
            "amount": amount,
            "currency": currency,
            "status": status,
            "created": created,
            "failure_code": None,
            "failure_message": None,
            "metadata": metadata,
            "account": account,
        }
        self._by_account.setdefault(account, []).append(payout)
        return payout

    def _public(self, payout):
        return {k: v for k, v in payout.items() if k != "account"}

    def _take_injected(self, method, path):
        for injected in self._injected:
            if injected[0] == method and injected[1].search(path) and injected[4] > 0:
                injected[4] -= 1
                return injected[2], {}, injected[3]
        return None

    def _body(self, status, type, message, code=None):
        error = {"type": type, "message": message}
        if code:
            error["code"] = code
        return status, {"error": error}

    def _error(self, status, type, message, code=None):
        status, body = self._body(status, type, message, code)
        return status, {}, body


@contextmanager
def mocked_stripe(settings, fake=None, api_base="https://api.stripe.test"):
    """Point the Stripe client at `fake` through `responses`; yields the fake."""
    fake = fake or FakeStripe()
    settings.STRIPE_SECRET_KEY = fake.api_key
    settings.STRIPE_API_BASE = api_base

    def callback(request):
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        status, headers, payload = fake.handle(request.method, request.url, request.headers, body)
        return status, headers, json.dumps(payload)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method in ("GET", "POST"):
            mock.add_callback(method, re.compile(re.escape(api_base) + r"/.*"), callback=callback)
        yield fake


@contextmanager
def served_stripe(fake=None, *, answer_delay=0.0):
    """Serve `fake` over HTTP on 127.0.0.1, answering each request after `answer_delay`
    seconds (as Stripe across a network would); yields (fake, base URL)."""
    fake = fake or FakeStripe()

    def handle(method, path, headers, body):
        return fake.handle(method, path, headers, body.decode())

    with serving_json(handle, answer_delay=answer_delay) as url:
        yield fake, url
