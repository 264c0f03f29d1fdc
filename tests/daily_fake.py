"""Stand-ins for Daily's REST API over real HTTP on 127.0.0.1, for the tests and the bench.

`responses` replays urllib3's retries but neither sleeps nor times out, so what depends on
waiting (Retry-After, timeouts, pacing, a rate limit) talks to one of these instead:

- `ScriptedDaily` answers each request with the next scripted reply and records when
  each arrived (tests/test_daily_client.py);
- `RateLimitedDaily` deletes every room after a fixed delay and, like Daily, answers 429
  with `Retry-After: 1` beyond a number of requests in any sliding second
  (bench/bench_daily_rooms.py).

Point the client at one with `DAILY_API_URL = server.url`.
"""

import json
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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


class RateLimitedDaily(DailyServer):
    """Deletes any room after `answer_delay` seconds; over `limit` accepted requests in
    any sliding second, answers 429 with `Retry-After: 1` instead."""

    def __init__(self, *, limit, answer_delay):
        super().__init__()
        self.limit = limit
        self.answer_delay = answer_delay
        self.accepted = deque()  # arrival times of the accepted requests in the last second
        self.paths = Counter()  # accepted requests per path
        self.throttled = 0

    def answer(self, method, path):
        now = time.monotonic()
        with self.lock:
            while self.accepted and self.accepted[0] <= now - 1.0:
                self.accepted.popleft()
            if len(self.accepted) >= self.limit:
                self.throttled += 1
                return 429, {"Retry-After": "1"}, {"error": "rate-limit-error"}, 0
            self.accepted.append(now)
            self.paths[path] += 1
        name = path.rsplit("/", 1)[-1]
        return 200, {}, {"deleted": True, "name": name}, self.answer_delay
