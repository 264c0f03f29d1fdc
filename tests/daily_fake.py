"""A small fake of the Daily REST API endpoints the room cleanup uses.

It keeps a set of rooms and answers, as Daily documents them:

- `DELETE /batch/rooms` with `{"room_names": [...]}` (1 to 1,000 names): all or nothing.
  https://docs.daily.co/reference/rest-api/rooms/batch/delete says only that "if there is
  an error in any of the data passed ... no rooms will be deleted", that success answers
  `{"deleted_count": n}` and that errors are 400s. Where it is vague we assume the least
  helpful answer a client must cope with: a name that is not a room (never was, already
  deleted, or not a valid name) fails the whole batch with a 400
  `invalid-request-error` that does not say which name it was.
- `DELETE /rooms/:name`: `{"deleted": true, "name": …}`, or 404 `not-found`.
- `GET /rooms/:name`: the room, or 404 `not-found`.
- a key other than the fake's own: 401 `authentication-error`.

With `rate_limits=True` it also enforces Daily's documented rate limits
(https://docs.daily.co/reference/rest-api#rate-limits), as sliding windows: 20 requests
in any second and 100 in any 5 seconds for most endpoints (the batch endpoint and
`GET /rooms/:name` among them), 2 in any second and 50 in any 30 seconds for
`DELETE /rooms/:name`. A request over a limit gets a 429 `rate-limit-error`; the docs
promise no `Retry-After`, so none is sent.

Tests can make a room fail every request that names it (`fail_room`). Serve it through
`responses` (`mocked_daily_fake`) in the test process, or over real HTTP on 127.0.0.1
(`served_daily`) for benchmarks and tests of waiting.
"""

import json
import re
import threading
import time
from collections import deque
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import responses

from tests.local_http import serving_json

TEST_API_KEY = "daily-test-key-0123456789"
BATCH_MAX = 1000
# (requests, seconds) per sliding window, by rate-limit class.
GENERAL_LIMITS = ((20, 1.0), (100, 5.0))
DELETE_ROOM_LIMITS = ((2, 1.0), (50, 30.0))


class SlidingWindows:
    """Admits a request unless it would exceed one of the `limits` (count, seconds)."""

    def __init__(self, limits, clock=time.monotonic):
        self.limits = limits
        self.clock = clock
        self.admitted = deque()
        self.longest = max(seconds for _, seconds in limits)

    def admit(self):
        now = self.clock()
        while self.admitted and self.admitted[0] <= now - self.longest:
            self.admitted.popleft()
        for count, seconds in self.limits:
            if sum(1 for moment in self.admitted if moment > now - seconds) >= count:
                return False
        self.admitted.append(now)
        return True


class FakeDaily:
    def __init__(self, api_key=TEST_API_KEY, *, rate_limits=False, answer_delay=0.0):
        self.api_key = api_key
        self.rooms = set()
        self.answer_delay = answer_delay
        self.requests = []  # (method, path, room names it named)
        self.throttled = 0
        self.on_request = None  # called with (method, path, names) before each answer
        self._failing = {}  # room name -> [status, body, times left or None]
        self._limits = (
            {
                "general": SlidingWindows(GENERAL_LIMITS),
                "delete": SlidingWindows(DELETE_ROOM_LIMITS),
            }
            if rate_limits
            else None
        )
        self._lock = threading.Lock()

    # --- what tests set up ------------------------------------------------------------

    def add_rooms(self, *names):
        self.rooms.update(names)

    def fail_room(self, name, *, status=500, error="server-error", info=None, times=None):
        """Answer the next `times` (all, if None) requests naming room `name` (a batch
        holding it too, a GET of it) with an error."""
        body = {"error": error, **({"info": info} if info else {})}
        self._failing[name] = [status, body, times]

    # --- what tests look at -----------------------------------------------------------

    def calls(self, method=None, path=None):
        return [
            call
            for call in self.requests
            if (method is None or call[0] == method) and (path is None or call[1] == path)
        ]

    def batches(self):
        """The names of each DELETE /batch/rooms received, in order."""
        return [names for method, path, names in self.requests if path == "/v1/batch/rooms"]

    # --- the API ----------------------------------------------------------------------

    def handle(self, method, url, headers, body):
        """Answer one request: (status, headers, body as a dict)."""
        path = urlsplit(url).path
        names = self._names(method, path, body)
        with self._lock:
            self.requests.append((method, path, names))
            if self._limits is not None:
                bucket = (
                    "delete" if method == "DELETE" and path.startswith("/v1/rooms/") else "general"
                )
                if not self._limits[bucket].admit():
                    self.throttled += 1
                    return 429, {}, {"error": "rate-limit-error", "info": "slow down"}
        if self.on_request:
            self.on_request(method, path, names)
        if self.answer_delay:
            time.sleep(self.answer_delay)
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, {}, {"error": "authentication-error", "info": "invalid API key"}
        with self._lock:
            return self._route(method, path, names)

    def _names(self, method, path, body):
        if path == "/v1/batch/rooms":
            try:
                names = json.loads(body or b"{}").get("room_names")
            except (ValueError, AttributeError):
                return None
            return names if isinstance(names, list) else None
        if path.startswith("/v1/rooms/"):
            return [unquote(path.removeprefix("/v1/rooms/"))]
        return []

    def _route(self, method, path, names):
        for name in names or ():
            failure = self._failing.get(name)
            if failure and failure[2] != 0:
                status, body, times = failure
                failure[2] = None if times is None else times - 1
                return status, {}, body
        if (method, path) == ("DELETE", "/v1/batch/rooms"):
            return self._delete_batch(names)
        if path.startswith("/v1/rooms/") and method in ("GET", "DELETE"):
            (name,) = names
            if name not in self.rooms:
                return 404, {}, {"error": "not-found", "info": f"room {name} was not found"}
            if method == "GET":
                return 200, {}, {"name": name, "privacy": "private"}
            self.rooms.discard(name)
            return 200, {}, {"deleted": True, "name": name}
        return 404, {}, {"error": "not-found", "info": f"{method} {path} is not an endpoint"}

    def _delete_batch(self, names):
        if not names or len(names) > BATCH_MAX or not all(isinstance(n, str) for n in names):
            info = f"room_names must hold 1 to {BATCH_MAX} room names"
            return 400, {}, {"error": "invalid-request-error", "info": info}
        if any(name not in self.rooms for name in names):
            info = "could not delete rooms: no room was deleted"
            return 400, {}, {"error": "invalid-request-error", "info": info}
        self.rooms.difference_update(names)
        return 200, {}, {"deleted_count": len(set(names))}


@contextmanager
def mocked_daily_fake(api_url, fake=None):
    """`fake` (a new FakeDaily if None) answering `api_url` behind `responses`."""
    fake = fake or FakeDaily()

    def callback(request):
        status, headers, body = fake.handle(
            request.method, request.url, request.headers, request.body
        )
        return status, {"Content-Type": "application/json", **headers}, json.dumps(body)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        pattern = re.compile(re.escape(api_url) + r"/.*")
        for method in (responses.GET, responses.DELETE, responses.POST):
            mock.add_callback(method, pattern, callback=callback)
        yield fake


@contextmanager
def served_daily(fake=None):
    """`fake` (a new FakeDaily if None) served over HTTP on 127.0.0.1; yields (fake, URL)."""
    fake = fake or FakeDaily()

    with serving_json(fake.handle) as url:
        yield fake, f"{url}/v1"


# --- A scripted server, for the client's tests of waiting -------------------------------
# `responses` replays urllib3's retries but neither sleeps nor times out, so the tests of
# Retry-After, timeouts and pacing talk to a real server answering what they script.


class DailyServer:
    """A threaded HTTP server answering DELETE requests with what `answer()` decides."""

    def __init__(self):
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Daily's API does
            # Headers and body go out in two writes: without this, Nagle's algorithm and
            # the client's delayed ACK add ~40 ms to every answer.
            disable_nagle_algorithm = True

            def do_DELETE(self):
                status, headers, body, delay = server.answer(self.command, self.path)
                if delay:
                    time.sleep(delay)
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # The client gave up waiting, as a test of timeouts intends.

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def answer(self, method, path):
        """Return (status, headers, JSON body, seconds to wait before answering)."""
        raise NotImplementedError

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class ScriptedDaily(DailyServer):
    """Answers each request with the next of `replies` (a 404 once they run out)."""

    def __init__(self):
        super().__init__()
        self.replies = []  # (status, headers, body, delay_seconds)
        self.requests = []  # (time.monotonic() on arrival, method, path)

    def answer(self, method, path):
        with self.lock:
            self.requests.append((time.monotonic(), method, path))
            return self.replies.pop(0) if self.replies else (404, {}, {}, 0)
