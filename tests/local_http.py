"""Real HTTP servers on 127.0.0.1 for the tests and the benches: one that records what it
receives and answers as told (the stand-in for the check-in ping service and for Sentry's
ingest endpoint), and `serving_json`, which serves a fake provider API (Stripe, Daily)."""

import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")


@dataclass
class RecordingServer:
    """What the server received, and how it answers: `status` (200), or `hang` to hold
    every request until the server stops (a ping service that never answers)."""

    host: str = "127.0.0.1"
    port: int = 0
    status: int = 200
    hang: bool = False
    received: list = field(default_factory=list)
    _released: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def paths(self):
        return [request.path for request in self.received]


def _handler(server):
    class Handler(BaseHTTPRequestHandler):
        def _record(self):
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            server.received.append(
                Received(
                    method=self.command,
                    path=parts.path,
                    query={key: values[0] for key, values in parse_qs(parts.query).items()},
                    headers=dict(self.headers.items()),
                    body=self.rfile.read(length) if length else b"",
                )
            )
            if server.hang:
                server._released.wait(timeout=60)
                return
            self.send_response(server.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        do_GET = do_POST = do_HEAD = _record

        def log_message(self, format, *args):
            pass

    return Handler


class running_server:
    """`with running_server() as server:` a RecordingServer listening until the block ends."""

    def __init__(self, **options):
        self.server = RecordingServer(**options)

    def __enter__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.server))
        self.httpd.daemon_threads = True
        self.server.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self.server

    def __exit__(self, *exc):
        self.server._released.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@contextmanager
def serving_json(handle, *, answer_delay=0.0):
    """Serve a fake API over HTTP/1.1 keep-alive on 127.0.0.1 until the block ends;
    yields its base URL. `handle(method, path, headers, body)` returns (status, headers,
    JSON body); every answer waits `answer_delay` seconds, as a provider across a network
    would."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive answer.
        disable_nagle_algorithm = True

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, payload = handle(self.command, self.path, self.headers, body)
            data = json.dumps(payload).encode()
            if answer_delay:
                time.sleep(answer_delay)
            self.send_response(status)
            for name, value in {**headers, "Content-Type": "application/json"}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_DELETE = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
