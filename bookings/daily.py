"""The Daily.co REST API client: the only module that talks to Daily.

One `requests.Session` per process. urllib3's `Retry` on its adapter retries 429, 5xx,
timeouts and connection errors a bounded number of times with exponential backoff and
jitter, honouring `Retry-After`. Rooms are deleted in batches (`DELETE /batch/rooms`, see
`bookings.daily_batches`), and every request is paced below the rate limit Daily sets for
its endpoint: about 2 per second (50 per 30 s) for `DELETE /rooms/:name`, 20 per second
(100 per 5 s) for the others, `DELETE /batch/rooms` and `GET /rooms/:name` among them.

Docs: https://docs.daily.co/reference/rest-api (authentication, rate limits).
"""

import random
from functools import lru_cache
from urllib.parse import quote

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from bookings.daily_batches import BATCH_SIZE_MAX, BatchDeletion, DeleteOutcome
from bookings.daily_batches import RoomDeletion as RoomDeletion  # re-exported
from cronlogs.pacing import Pacer
from cronlogs.providers import ErrorKind, ProviderError, kind_for_status

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A Retry-After longer than this is cut short: the run is hourly, and a room whose retries
# run out is simply tried again by the next run.
RETRY_AFTER_MAX_SECONDS = 60
BACKOFF_MAX_SECONDS = 30


class DailyError(ProviderError):
    """A Daily call failed (`kind`, `http_status`, Daily's own text); never carries the key."""

    provider = "Daily"


class DailyRetry(Retry):
    """urllib3's Retry with two adjustments for Daily's rate limiter."""

    def get_retry_after(self, response):
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, RETRY_AFTER_MAX_SECONDS)

    def get_backoff_time(self):
        # urllib3 retries the first failure at once; right after a 429 that only earns
        # another 429, so a 429 without Retry-After waits one backoff step first.
        backoff = super().get_backoff_time()
        if backoff == 0 and self.history and self.history[-1].status == 429:
            backoff = self.backoff_factor + random.random() * self.backoff_jitter
        return min(backoff, self.backoff_max)


class DailyClient:
    """Calls to Daily's REST API with one session, timeouts, retries and pacing."""

    def __init__(
        self,
        *,
        api_key,
        api_url="https://api.daily.co/v1",
        timeout=10.0,
        max_retries=3,
        backoff_factor=0.5,
        delete_rate_per_second=1.5,
        batch_rate_per_second=15.0,
        batch_size=BATCH_SIZE_MAX,
    ):
        if not 1 <= batch_size <= BATCH_SIZE_MAX:
            raise ImproperlyConfigured(
                f"DAILY_BATCH_SIZE must be between 1 and {BATCH_SIZE_MAX} (Daily's limit)."
            )
        self.api_url = api_url.rstrip("/")
        self.batch_size = batch_size
        self.timeout = timeout
        self._api_key = api_key
        retry = DailyRetry(
            total=max_retries,
            # A repeated DELETE /rooms/:name answers 404, which counts as gone; a repeated
            # batch whose first try went through fails, and its rooms are found gone.
            allowed_methods=frozenset({"GET", "DELETE"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff_factor,
            backoff_jitter=backoff_factor,
            backoff_max=BACKOFF_MAX_SECONDS,
            respect_retry_after_header=True,
            # After the last retry, hand back the response so its error text is reported.
            raise_on_status=False,
        )
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        # DELETE /rooms/:name has a limit of its own; the batch pacer serves the others.
        self.delete_pacer = Pacer(delete_rate_per_second, setting="DAILY_DELETE_RATE_PER_SECOND")
        self.batch_pacer = Pacer(batch_rate_per_second, setting="DAILY_BATCH_RATE_PER_SECOND")

    def room_url(self, name):
        """The API URL of room `name`; the name is one path segment, whatever it holds."""
        if name in ("", ".", ".."):
            # "." and ".." would be resolved as dot-segments and address another endpoint.
            raise DailyError(f"invalid room name {name!r}", kind=ErrorKind.INVALID)
        return f"{self.api_url}/rooms/{quote(name, safe='')}"

    def room_exists(self, name):
        """True if room `name` exists, False on 404; raises DailyError otherwise.

        https://docs.daily.co/reference/rest-api/rooms/get-room-config
        """
        url = self.room_url(name)
        response = self._paced("GET", url, f"/rooms/{name}", self.batch_pacer)
        if response.status_code == 404:
            return False
        if _succeeded(response):
            return True
        raise self._error(response)

    def delete_room(self, name):
        """Delete room `name` with one DELETE; return DELETED or ALREADY_GONE (404).

        Raises DailyError for any other answer once retries are spent.
        https://docs.daily.co/reference/rest-api/rooms/delete-room
        """
        url = self.room_url(name)
        response = self._paced("DELETE", url, f"/rooms/{name}", self.delete_pacer)
        if _succeeded(response):
            return DeleteOutcome.DELETED
        if response.status_code == 404:
            # An expired room answers 404 with "deleted": true: this call removed it.
            deleted = _json(response).get("deleted") is True
            return DeleteOutcome.DELETED if deleted else DeleteOutcome.ALREADY_GONE
        raise self._error(response)

    def delete_room_batch(self, names):
        """Delete the rooms `names` (1 to 1,000) with one DELETE /batch/rooms; return
        Daily's `deleted_count`.

        All or nothing: if Daily refuses any of them it deletes none and this raises
        DailyError, which does not say which room was the problem.
        https://docs.daily.co/reference/rest-api/rooms/batch/delete
        """
        names = list(names)
        if not 1 <= len(names) <= BATCH_SIZE_MAX:
            raise ValueError(f"a batch holds 1 to {BATCH_SIZE_MAX} rooms, not {len(names)}")
        response = self._paced(
            "DELETE",
            f"{self.api_url}/batch/rooms",
            f"/batch/rooms ({len(names)} rooms)",
            self.batch_pacer,
            json={"room_names": names},
        )
        if _succeeded(response):
            return _json(response).get("deleted_count")
        raise self._error(response)

    def delete_rooms(self, names, *, before_delete=None):
        """Delete the rooms `names` in batches of DAILY_BATCH_SIZE and yield one
        RoomDeletion per name as each is settled (names given twice are deleted once); a
        failure is yielded, never raised. `before_delete(names)`, if given, is called right
        before each deletion request and returns the names still to delete: the others are
        neither deleted nor yielded. See `bookings.daily_batches`."""
        deletion = BatchDeletion(self, batch_size=self.batch_size, before_delete=before_delete)
        return deletion.run(names)

    def _paced(self, method, url, label, pacer, **kwargs):
        pacer.wait()
        try:
            response = self.session.request(
                method, url, timeout=self.timeout, allow_redirects=False, **kwargs
            )
        except requests.RequestException as exc:
            pacer.hold_off()
            raise DailyError(
                f"{method} {label}: {_cause(exc)}", kind=ErrorKind.UNAVAILABLE
            ) from exc
        if _was_retried(response):
            pacer.hold_off()
        return response

    def _error(self, response):
        body = _json(response)
        text = body.get("info") or body.get("error") or response.text or response.reason or ""
        if body.get("error") and body.get("info"):
            text = f"{body['error']}: {body['info']}"
        text = str(text).replace(self._api_key, "[REDACTED]")
        status = response.status_code
        # A redirect is never followed (the key would go with it): an error we cannot use.
        kind = ErrorKind.INVALID if 300 <= status < 400 else kind_for_status(status)
        return DailyError(text, kind=kind, http_status=status)


def _cause(exc):
    """What went wrong in a request that got no usable answer, retries included."""
    cause = exc.args[0] if exc.args and isinstance(exc.args[0], Exception) else exc
    # requests wraps urllib3's MaxRetryError, whose `reason` is the last attempt's error.
    cause = getattr(cause, "reason", None) or cause
    if isinstance(exc, requests.Timeout) or "timed out" in str(cause).lower():
        return f"timed out ({type(cause).__name__}: {cause})"
    return f"{type(cause).__name__}: {cause}"


def _succeeded(response):
    # Not `response.ok`: that includes 3xx, and redirects are not followed (nor expected).
    return 200 <= response.status_code < 300


def _json(response):
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _was_retried(response):
    retries = getattr(response.raw, "retries", None)
    return bool(getattr(retries, "history", ()))


def require_configured():
    """Raise ImproperlyConfigured, naming the variable, when no Daily key is set."""
    if not settings.DAILY_API_KEY:
        raise ImproperlyConfigured(
            "DAILY_API_KEY is not set: add it to the environment (or .env) to call Daily; "
            "`manage.py cleanup_daily_rooms --dry-run` lists the rooms without it."
        )


def client():
    """The process's Daily client for the current settings (one session, its pacers).

    Raises ImproperlyConfigured naming DAILY_API_KEY when the key is not set.
    """
    require_configured()
    return _client(
        settings.DAILY_API_KEY,
        settings.DAILY_API_URL,
        settings.DAILY_TIMEOUT_SECONDS,
        settings.DAILY_MAX_RETRIES,
        settings.DAILY_BACKOFF_FACTOR,
        settings.DAILY_DELETE_RATE_PER_SECOND,
        settings.DAILY_BATCH_RATE_PER_SECOND,
        settings.DAILY_BATCH_SIZE,
    )


@lru_cache(maxsize=4)
def _client(api_key, api_url, timeout, max_retries, backoff, delete_rate, batch_rate, batch_size):
    # Cached per settings, so one run reuses one session (keep-alive) and its pacers.
    return DailyClient(
        api_key=api_key,
        api_url=api_url,
        timeout=timeout,
        max_retries=max_retries,
        backoff_factor=backoff,
        delete_rate_per_second=delete_rate,
        batch_rate_per_second=batch_rate,
        batch_size=batch_size,
    )


def room_exists(name):
    return client().room_exists(name)


def delete_room(name):
    return client().delete_room(name)


def delete_room_batch(names):
    return client().delete_room_batch(names)


def delete_rooms(names, *, before_delete=None):
    return client().delete_rooms(names, before_delete=before_delete)
