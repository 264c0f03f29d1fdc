"""The Daily client: outcomes, retries, timeouts, pacing, URL encoding, secrets.

`responses` intercepts most calls. It replays urllib3's retries but neither sleeps nor
retries timeouts, so the tests of waiting (Retry-After, timeouts, pacing) talk to a real
HTTP server on 127.0.0.1.
"""

import json
import re
import time
from urllib.parse import quote

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bookings import daily
from bookings.daily import DailyError, DeleteOutcome
from cronlogs.pacing import Pacer
from tests.conftest import DAILY_TEST_API_KEY, DAILY_TEST_API_URL
from tests.daily_fake import FakeDaily, ScriptedDaily, mocked_daily_fake, served_daily

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


# --- Batches: DELETE /batch/rooms, and what happens when Daily refuses one --------------

BATCH_URL = f"{DAILY_TEST_API_URL}/batch/rooms"


def test_it_deletes_a_batch_with_one_authenticated_request(mocked_daily):
    mocked_daily.delete(BATCH_URL, json={"deleted_count": 3})

    deleted = daily.delete_room_batch(["a", "b", "c"])

    # It should send the names as Daily documents ({"room_names": [...]}), with the key.
    assert deleted == 3
    (call,) = mocked_daily.calls
    assert call.request.method == "DELETE"
    assert json.loads(call.request.body) == {"room_names": ["a", "b", "c"]}
    assert call.request.headers["Content-Type"] == "application/json"
    assert call.request.headers["Authorization"] == f"Bearer {DAILY_TEST_API_KEY}"


@pytest.mark.parametrize("count", [0, 1001])
def test_it_refuses_a_batch_daily_would_not_take(mocked_daily, count):
    with pytest.raises(ValueError, match="1 to 1000"):
        daily.delete_room_batch([f"room-{n}" for n in range(count)])
    assert len(mocked_daily.calls) == 0


def test_it_raises_a_refused_batch_as_an_invalid_request(mocked_daily):
    mocked_daily.delete(
        BATCH_URL, status=400, json={"error": "invalid-request-error", "info": "no room deleted"}
    )

    with pytest.raises(DailyError) as caught:
        daily.delete_room_batch(["a", "b"])

    # It should not retry it: the same names would be refused again.
    assert len(mocked_daily.calls) == 1
    assert (caught.value.kind, caught.value.http_status) == ("invalid", 400)
    assert str(caught.value) == "Daily invalid 400: invalid-request-error: no room deleted"


def test_it_retries_a_batch_after_a_503(mocked_daily):
    mocked_daily.delete(BATCH_URL, status=503, json={"error": "server-error"})
    mocked_daily.delete(BATCH_URL, json={"deleted_count": 2})

    assert daily.delete_room_batch(["a", "b"]) == 2
    assert len(mocked_daily.calls) == 2


def settled(deletions):
    """{name: outcome or error kind} of what `delete_rooms` yielded; each name once."""
    results = list(deletions)
    names = [result.name for result in results]
    assert len(names) == len(set(names)), "a room was reported twice"
    return {r.name: r.outcome if r.error is None else f"error:{r.error.kind}" for r in results}


def test_it_names_each_room_in_one_request_when_all_exist(daily_fake):
    names = [f"room-{n}" for n in range(1500)]
    daily_fake.add_rooms(*names)

    results = settled(daily.delete_rooms(names))

    # It should delete 1,500 rooms with two requests: 1,000 (Daily's most), then 500.
    assert [len(batch) for batch in daily_fake.batches()] == [1000, 500]
    assert len(daily_fake.requests) == 2
    assert set(results.values()) == {DeleteOutcome.DELETED} and len(results) == 1500


def test_it_finds_a_few_missing_rooms_with_few_requests(daily_fake):
    names = [f"room-{n}" for n in range(1000)]
    gone = set(names[7::100])  # 10 rooms Daily no longer has, spread out
    daily_fake.add_rooms(*(set(names) - gone))

    results = settled(daily.delete_rooms(names))

    # It should settle every room, and need about 2 x log2(100) requests per missing room,
    # not one per room: a GET for each of the 10, no DELETE /rooms/:name at all.
    assert {name for name, outcome in results.items() if outcome == "already_gone"} == gone
    assert sum(outcome == DeleteOutcome.DELETED for outcome in results.values()) == 990
    assert daily_fake.rooms == set()
    assert len(daily_fake.calls("GET")) == 10
    assert len(daily_fake.calls("DELETE", "/v1/batch/rooms")) <= 10 * 2 * 7
    assert not [
        call
        for call in daily_fake.requests
        if call[1].startswith("/v1/rooms/") and call[0] == "DELETE"
    ]


def test_it_checks_rooms_one_by_one_once_most_turn_out_gone(daily_fake):
    names = [f"room-{n}" for n in range(200)]
    daily_fake.add_rooms(*names[::10])  # 20 left on Daily, 180 gone

    results = settled(daily.delete_rooms(names))

    # It should switch to one GET per room as culprits turn out common: about one
    # request per room in all, and the rooms that exist deleted together at the end.
    assert sum(outcome == "already_gone" for outcome in results.values()) == 180
    assert sum(outcome == DeleteOutcome.DELETED for outcome in results.values()) == 20
    assert daily_fake.rooms == set()
    assert len(daily_fake.requests) <= 200 + 30


def test_it_sends_names_daily_would_refuse_in_a_batch_alone_and_encoded(daily_fake):
    daily_fake.add_rooms("good-1", "good-2", *ODD_NAMES[:3])

    results = settled(daily.delete_rooms(["good-1", *ODD_NAMES, "good-2"]))

    # A name outside Daily's grammar would fail its whole batch: it goes alone, as one
    # encoded path segment, and Daily's answer to it is its own.
    assert daily_fake.batches() == [["good-1", "good-2"]]
    singles = [path for method, path, _ in daily_fake.requests if path.startswith("/v1/rooms/")]
    assert singles == [f"/v1/rooms/{quote(name, safe='')}" for name in ODD_NAMES]
    assert [results[name] for name in ODD_NAMES] == ["deleted"] * 3 + ["already_gone"] * 6


def test_it_stops_sending_once_daily_refuses_the_key(daily_fake, daily_settings):
    daily_settings.DAILY_API_KEY = "revoked-key-0123456789"
    daily_settings.DAILY_BATCH_SIZE = 2
    daily_fake.add_rooms("a", "b", "c", "d")

    results = settled(daily.delete_rooms(["a", "b", "c", "d", "odd name"]))

    # One 401 and nothing more: every room gets the refusal, none is narrowed down.
    assert len(daily_fake.requests) == 1
    assert set(results.values()) == {"error:authentication"} and len(results) == 5


def test_it_never_deletes_what_before_delete_drops(daily_fake):
    daily_fake.add_rooms("keep-me", "room-1", "room-2")
    asked = []

    def before_delete(names):
        asked.append(list(names))
        return [name for name in names if name != "keep-me"]

    results = settled(
        daily.delete_rooms(["room-1", "keep-me", "room-2"], before_delete=before_delete)
    )

    # It should ask right before the request, send only what is left, and not report the
    # dropped room at all (the caller keeps track of it).
    assert asked == [["room-1", "keep-me", "room-2"]]
    assert daily_fake.batches() == [["room-1", "room-2"]]
    assert results == {"room-1": "deleted", "room-2": "deleted"}
    assert "keep-me" in daily_fake.rooms


def test_it_deletes_a_name_given_twice_once(daily_fake):
    daily_fake.add_rooms("shared")

    assert settled(daily.delete_rooms(["shared", "shared"])) == {"shared": "deleted"}
    assert daily_fake.batches() == [["shared"]]


@given(
    rooms=st.lists(st.sampled_from(["exists", "gone", "chokes"]), max_size=40),
    batch_size=st.integers(min_value=1, max_value=16),
)
@hypothesis_settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_it_settles_every_room_whatever_daily_holds(daily_settings, rooms, batch_size):
    daily_settings.DAILY_BATCH_SIZE = batch_size
    names = [f"room-{n}" for n in range(len(rooms))]
    fake = FakeDaily(DAILY_TEST_API_KEY)
    for name, kind in zip(names, rooms, strict=True):
        if kind != "gone":
            fake.add_rooms(name)
        if kind == "chokes":
            fake.fail_room(name, status=500)

    with mocked_daily_fake(DAILY_TEST_API_URL, fake):
        results = settled(daily.delete_rooms(names))

    # Every room is reported once, with what really became of it: deleted if it existed
    # and is gone from Daily, already gone if it was, failed if it is still as it was.
    kinds = dict(zip(names, rooms, strict=True))
    for name, outcome in results.items():
        if outcome == DeleteOutcome.DELETED:
            assert kinds[name] == "exists" and name not in fake.rooms
        elif outcome == DeleteOutcome.ALREADY_GONE:
            assert kinds[name] == "gone"
        else:
            assert outcome == "error:unavailable"
            assert kinds[name] == "gone" or name in fake.rooms
    assert set(results) == set(names)
    # Without a room Daily chokes on, every room gets its true outcome; and without a
    # missing one either, each room is named by one request only.
    if "chokes" not in kinds.values():
        expected = {"exists": DeleteOutcome.DELETED, "gone": DeleteOutcome.ALREADY_GONE}
        assert results == {name: expected[kind] for name, kind in kinds.items()}
    if set(kinds.values()) <= {"exists"}:
        assert len(fake.requests) == -(-len(names) // batch_size)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("DAILY_BATCH_SIZE", 0), ("DAILY_BATCH_SIZE", 1001), ("DAILY_BATCH_RATE_PER_SECOND", -1)],
)
def test_it_names_a_bad_batch_setting(daily_settings, setting, value):
    setattr(daily_settings, setting, value)

    with pytest.raises(ImproperlyConfigured, match=setting):
        daily.delete_room_batch(["a"])


def test_it_paces_batches_and_checks_on_the_wire(daily_settings, pacer_releases):
    daily_settings.DAILY_BATCH_RATE_PER_SECOND = 20
    fake = FakeDaily(DAILY_TEST_API_KEY)
    fake.add_rooms("room-0", "room-1", "room-2")  # room-3 is gone
    arrivals = []
    fake.on_request = lambda method, path, names: arrivals.append(time.monotonic())

    with served_daily(fake) as (fake, url):
        daily_settings.DAILY_API_URL = url
        results = settled(daily.delete_rooms(["room-0", "room-1", "room-2", "room-3"]))

    # Batches and GETs share Daily's general limit: the client spaces them 1/20 s apart.
    assert results["room-3"] == "already_gone"
    assert len(arrivals) == len(pacer_releases) >= 4
    assert_paced(pacer_releases, interval=0.05)
    assert_paced(arrivals, interval=0.05, late_first=True)
