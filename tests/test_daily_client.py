"""The Daily client: outcomes, retries, timeouts, pacing, URL encoding, secrets.

`responses` intercepts most calls. It replays urllib3's retries but neither sleeps nor
retries timeouts, so the tests of waiting (Retry-After, timeouts, pacing) talk to a real
HTTP server on 127.0.0.1.
"""

import re
import time
from urllib.parse import quote

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured

from bookings import daily
from bookings.daily import DailyError, DeleteOutcome, Pacer
from tests.conftest import DAILY_TEST_API_KEY, DAILY_TEST_API_URL
from tests.daily_fake import ScriptedDaily

ROOM = "room-abc-123"
ROOM_URL = f"{DAILY_TEST_API_URL}/rooms/{ROOM}"


def test_it_deletes_a_room_with_one_authenticated_delete(mocked_daily):
    mocked_daily.delete(ROOM_URL, json={"deleted": True, "name": ROOM})

    outcome = daily.delete_room(ROOM)

    # It should send exactly one DELETE, with the key as a bearer token, and say "deleted".
    assert outcome == DeleteOutcome.DELETED
    assert len(mocked_daily.calls) == 1
    request = mocked_daily.calls[0].request
    assert request.method == "DELETE"
    assert request.headers["Authorization"] == f"Bearer {DAILY_TEST_API_KEY}"


def test_it_reports_a_404_as_already_gone(mocked_daily):
    mocked_daily.delete(
        ROOM_URL, status=404, json={"error": "not-found", "info": f"room {ROOM} was not found"}
    )

    # It should not treat a missing room as a failure.
    assert daily.delete_room(ROOM) == DeleteOutcome.ALREADY_GONE
    assert len(mocked_daily.calls) == 1


def test_it_counts_an_expired_room_deleted_by_the_call_as_deleted(mocked_daily):
    # Daily answers 404 with "deleted": true when the call removed an expired room.
    mocked_daily.delete(ROOM_URL, status=404, json={"error": "not-found", "deleted": True})

    assert daily.delete_room(ROOM) == DeleteOutcome.DELETED


def test_it_retries_a_500_and_then_succeeds(mocked_daily):
    mocked_daily.delete(ROOM_URL, status=500, json={"error": "server-error"})
    mocked_daily.delete(ROOM_URL, json={"deleted": True, "name": ROOM})

    # It should retry once and report the deletion.
    assert daily.delete_room(ROOM) == DeleteOutcome.DELETED
    assert len(mocked_daily.calls) == 2


def test_it_gives_up_after_the_retries_with_status_and_dailys_message(mocked_daily):
    mocked_daily.delete(
        ROOM_URL, status=503, json={"error": "server-error", "info": "try again later"}
    )

    with pytest.raises(DailyError) as caught:
        daily.delete_room(ROOM)

    # It should try 1 + DAILY_MAX_RETRIES times, then raise with the status and the text.
    assert len(mocked_daily.calls) == 1 + 3
    assert caught.value.http_status == 503
    assert (caught.value.kind, caught.value.retryable) == ("unavailable", True)
    assert str(caught.value) == "Daily unavailable 503: server-error: try again later"


def test_it_does_not_retry_a_client_error(mocked_daily):
    mocked_daily.delete(
        ROOM_URL, status=401, json={"error": "authentication-error", "info": "bad API key"}
    )

    with pytest.raises(DailyError) as caught:
        daily.delete_room(ROOM)

    # It should fail at once, as a rejected key: retrying cannot help.
    assert len(mocked_daily.calls) == 1
    assert caught.value.http_status == 401
    assert (caught.value.kind, caught.value.retryable) == ("authentication", False)


def test_it_turns_a_timeout_into_a_daily_error(mocked_daily):
    mocked_daily.delete(ROOM_URL, body=requests.exceptions.ReadTimeout("read timed out"))

    with pytest.raises(DailyError) as caught:
        daily.delete_room(ROOM)

    # It should raise the client's one error type, with no status and a plain reason.
    assert caught.value.http_status is None and caught.value.kind == "unavailable"
    assert "timed out" in str(caught.value)


def test_it_never_puts_the_api_key_in_an_error(mocked_daily):
    # Even if Daily were to echo the key back, the error must not carry it.
    mocked_daily.delete(
        ROOM_URL,
        status=400,
        json={"error": "invalid-request-error", "info": f"key {DAILY_TEST_API_KEY} rejected"},
    )

    with pytest.raises(DailyError) as caught:
        daily.delete_room(ROOM)

    assert DAILY_TEST_API_KEY not in str(caught.value)
    assert DAILY_TEST_API_KEY not in repr(caught.value)
    assert "[REDACTED]" in str(caught.value)


ODD_NAMES = [
    "with space",
    "a/b",
    "../../domain",
    "..%2F..%2Fdomain",
    "room?name=x#frag",
    "ünïcødé-会議室-🎥",
    "x" * 300,
    "back\\slash",
    "...",
]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_it_url_encodes_odd_room_names_into_one_path_segment(mocked_daily, name):
    mocked_daily.delete(
        re.compile(r"https://api\.daily\.test/.*"),
        status=404,
        json={"error": "not-found"},
    )

    daily.delete_room(name)

    # It should address /v1/rooms/<name encoded as one segment>, never another endpoint.
    request = mocked_daily.calls[0].request
    assert request.path_url == f"/v1/rooms/{quote(name, safe='')}"
    assert request.path_url.count("/") == 3
    assert "?" not in request.path_url and "#" not in request.path_url
    assert request.url.startswith(f"{DAILY_TEST_API_URL}/rooms/")


@pytest.mark.parametrize("name", ["", ".", ".."])
def test_it_refuses_names_that_would_address_another_endpoint(mocked_daily, name):
    # It should raise before sending anything: "." and ".." are dot-segments in a URL.
    with pytest.raises(DailyError, match="invalid room name"):
        daily.delete_room(name)
    assert len(mocked_daily.calls) == 0


def test_it_tells_whether_a_room_exists(mocked_daily):
    mocked_daily.get(f"{DAILY_TEST_API_URL}/rooms/here", json={"name": "here"})
    mocked_daily.get(f"{DAILY_TEST_API_URL}/rooms/gone", status=404, json={"error": "not-found"})
    mocked_daily.get(
        f"{DAILY_TEST_API_URL}/rooms/broken", status=500, json={"error": "server-error"}
    )

    # It should answer True, False on 404, and raise on anything else.
    assert daily.room_exists("here") is True
    assert daily.room_exists("gone") is False
    with pytest.raises(DailyError) as caught:
        daily.room_exists("broken")
    assert caught.value.http_status == 500


def test_it_names_daily_api_key_when_it_is_missing(daily_settings):
    daily_settings.DAILY_API_KEY = ""

    # It should refuse to build a client and say which variable to set.
    with pytest.raises(ImproperlyConfigured, match="DAILY_API_KEY"):
        daily.delete_room(ROOM)


def test_it_spaces_paced_calls_by_the_rate():
    clock = FakeClock()
    pacer = Pacer(2.0, clock=clock.now, sleep=clock.sleep)

    starts = []
    for _ in range(5):
        pacer.wait()
        starts.append(clock.now())

    # It should let the first call go at once, then one every 1/rate seconds.
    assert starts == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])


def test_it_counts_time_spent_in_the_call_towards_the_interval():
    clock = FakeClock()
    pacer = Pacer(2.0, clock=clock.now, sleep=clock.sleep)

    pacer.wait()
    clock.sleep(0.3)  # the request itself took 0.3 s
    pacer.wait()

    # It should pace start to start, so only the remaining 0.2 s is waited.
    assert clock.now() == pytest.approx(0.5)


def test_it_holds_off_a_full_interval_after_a_retried_call():
    clock = FakeClock()
    pacer = Pacer(2.0, clock=clock.now, sleep=clock.sleep)

    pacer.wait()
    clock.sleep(3.0)  # retries with backoff took 3 s
    pacer.hold_off()
    pacer.wait()

    assert clock.now() == pytest.approx(3.5)


class FakeClock:
    def __init__(self):
        self.time = 0.0

    def now(self):
        return self.time

    def sleep(self, seconds):
        self.time += seconds


# --- Against a real HTTP server: what urllib3 really does on the wire -----------------------


@pytest.fixture
def live_daily(daily_settings):
    with ScriptedDaily() as server:
        daily_settings.DAILY_API_URL = server.url
        yield server


def test_it_waits_for_retry_after_on_a_429_then_retries(live_daily):
    live_daily.replies = [
        (429, {"Retry-After": "1"}, {"error": "rate-limit-error"}, 0),
        (200, {}, {"deleted": True, "name": ROOM}, 0),
    ]

    started = time.monotonic()
    outcome = daily.delete_room(ROOM)
    elapsed = time.monotonic() - started

    # It should wait the second Daily asked for, then retry once and succeed.
    assert outcome == DeleteOutcome.DELETED
    assert len(live_daily.requests) == 2
    gap = live_daily.requests[1][0] - live_daily.requests[0][0]
    assert gap >= 0.95
    assert elapsed < 5


def test_it_retries_a_request_that_timed_out(live_daily, daily_settings):
    daily_settings.DAILY_TIMEOUT_SECONDS = 0.2
    live_daily.replies = [
        (200, {}, {"deleted": True, "name": ROOM}, 0.6),
        (404, {}, {"error": "not-found"}, 0),
    ]

    # It should retry the DELETE; the room the slow first try deleted now answers 404.
    assert daily.delete_room(ROOM) == DeleteOutcome.ALREADY_GONE
    assert len(live_daily.requests) == 2


def test_it_gives_up_on_a_server_that_never_answers_in_time(live_daily, daily_settings):
    daily_settings.DAILY_TIMEOUT_SECONDS = 0.2
    daily_settings.DAILY_MAX_RETRIES = 1
    live_daily.replies = [(200, {}, {"deleted": True}, 0.6)] * 2

    with pytest.raises(DailyError) as caught:
        daily.delete_room(ROOM)

    # It should try twice (one retry), then raise a timeout error without a status.
    assert len(live_daily.requests) == 2
    assert caught.value.http_status is None
    assert "timed out" in str(caught.value)


def test_it_paces_deletes_on_the_wire(live_daily, daily_settings, pacer_releases):
    daily_settings.DAILY_DELETE_RATE_PER_SECOND = 20
    live_daily.replies = [(200, {}, {"deleted": True}, 0)] * 6

    for n in range(6):
        daily.delete_room(f"room-{n}")

    # It should space the six requests 1/20 s apart: 5 intervals in all.
    times = [moment for moment, _, _ in live_daily.requests]
    assert len(times) == 6
    assert_paced(pacer_releases, interval=0.05)
    assert_paced(times, interval=0.05, late_first=True)


def test_it_deletes_many_rooms_in_order_reporting_failures(mocked_daily):
    mocked_daily.delete(f"{DAILY_TEST_API_URL}/rooms/a", json={"deleted": True})
    mocked_daily.delete(f"{DAILY_TEST_API_URL}/rooms/b", status=500, json={"error": "boom"})
    mocked_daily.delete(f"{DAILY_TEST_API_URL}/rooms/c", status=404, json={"error": "not-found"})

    results = list(daily.delete_rooms(["a", "b", "c"]))

    # It should yield one result per name, in order, with the failure as a value.
    assert [result.name for result in results] == ["a", "b", "c"]
    assert results[0].outcome == DeleteOutcome.DELETED and results[0].error is None
    assert results[1].outcome is None and results[1].error.http_status == 500
    assert results[2].outcome == DeleteOutcome.ALREADY_GONE
    assert len(mocked_daily.calls) == 1 + (1 + 3) + 1


def test_it_keeps_the_pace_when_deletes_overlap(live_daily, daily_settings, pacer_releases):
    daily_settings.DAILY_DELETE_RATE_PER_SECOND = 20
    live_daily.replies = [(200, {}, {"deleted": True}, 0.08)] * 8

    results = list(daily.delete_rooms([f"room-{n}" for n in range(8)]))

    # Answers take 80 ms, longer than the 50 ms interval: requests overlap, yet their
    # starts stay 1/20 s apart and each room gets exactly one DELETE.
    assert all(result.outcome == DeleteOutcome.DELETED for result in results)
    times = sorted(moment for moment, _, _ in live_daily.requests)
    assert sorted(path for _, _, path in live_daily.requests) == sorted(
        f"/v1/rooms/room-{n}" for n in range(8)
    )
    assert len(pacer_releases) == 8
    assert_paced(pacer_releases, interval=0.05)
    assert_paced(times, interval=0.05, late_first=True)
    # Sequential calls would need 8 x 80 ms; paced overlap needs about 7 x 50 ms + 80 ms.
    assert times[-1] - times[0] < 0.6


@pytest.fixture
def pacer_releases(monkeypatch):
    """The moments the client's pacer let each request go, as the client saw them."""
    releases, original_wait = [], Pacer.wait

    def recording_wait(pacer):
        original_wait(pacer)
        releases.append(time.monotonic())

    monkeypatch.setattr(Pacer, "wait", recording_wait)
    return releases


def assert_paced(times, *, interval, late_first=False):
    """`times` span at least one `interval` per gap.

    Arrivals at the server (`late_first`) get one interval of slack: the first request
    also opens the connection, and a loaded machine can deliver it late, next to the
    second one. The client-side release times need no such slack.
    """
    gaps = len(times) - 1 - (1 if late_first else 0)
    assert sorted(times)[-1] - sorted(times)[0] >= gaps * interval - 0.005


def test_it_treats_a_redirect_as_an_error_and_does_not_follow_it(mocked_daily):
    mocked_daily.delete(ROOM_URL, status=301, headers={"Location": "https://evil.test/steal"})

    # It should neither follow (and so re-send the key elsewhere) nor call it deleted.
    with pytest.raises(DailyError) as caught:
        daily.delete_room(ROOM)
    assert caught.value.http_status == 301
    assert len(mocked_daily.calls) == 1
