"""Log rows of any shape: the table is shared with the platform's own writers, so a row's
context may hold any JSON, and every log page must still list and open it."""

from html import unescape

import pytest
from django.db import transaction
from django.db.models import JSONField, Value
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronlogs.models import CronRun, DailyRoomLog, EmailLog, Log
from tests.conftest import admin_answer

pytestmark = pytest.mark.django_db

# Rows the platform's own writers may leave in the shared "Log" table.
ODD_CONTEXTS = {
    "a list": [1, "two", None],
    "a string": "just text",
    "a number": 42,
    "JSON null": None,
    "an empty object": {},
    "nested junk": {"a": [{"b": {"c": [None, True, 1.5, "é"]}}], "": {"": []}},
    "a numeric start time": {"cronType": "cleanup-logs", "startTime": 12345},
    "a duration as text": {"cronType": "cleanup-logs", "duration": "1200"},
    "a duration that is no number": {"duration": "soon", "itemsProcessed": "many"},
    "durations of odd types": {"duration": [1200], "durationSeconds": {"s": 1}},
    "a boolean duration": {"duration": True, "trigger": False},
    "a huge duration": {"duration": 10**40, "itemsProcessed": -(10**30)},
    "booking ids of every type": {"bookingId": {"id": 1}, "userId": [1], "roomId": 7},
    "a booking id as text": {"bookingId": "#12<b>", "emailType": ["x"]},
    "a negative booking id": {"bookingId": -5, "recipientEmail": 12},
    "errors of odd types": {"error": {"code": 500}, "cronType": ["a", "b"]},
    "a long error": {"error": "x" * 10_000, "bookingId": 10**30},
    "a numeric error": {"error": 404, "bookingId": True},
    "markup everywhere": {"error": "<script>alert(1)</script>", "roomId": "<b>r</b>"},
}
LOG_PAGES = ["log", "cronrun", "emaillog", "dailyroomlog"]
QUERIES = ["", "?q=12"]
PAGE_OF_TYPE = {
    Log.Type.CRON_RUN: "cronrun",
    Log.Type.EMAIL_ERROR: "emaillog",
    Log.Type.DAILY_ROOM_ERROR: "dailyroomlog",
}


def odd_row(context, type=Log.Type.CRON_RUN):
    # A Python None would be SQL NULL, which the column refuses; JSON null is a value.
    value = Value(None, JSONField()) if context is None else context
    row = Log.objects.create(type=type, status="ERROR", level="ERROR", message="odd", context=value)
    row.refresh_from_db()
    return row


@pytest.mark.parametrize("context", ODD_CONTEXTS.values(), ids=ODD_CONTEXTS.keys())
def test_it_shows_a_row_whatever_json_its_context_holds(staff_client, context):
    rows = [odd_row(context, type) for type in PAGE_OF_TYPE]

    for url in [f"/admin/cronlogs/{model}/{query}" for model in LOG_PAGES for query in QUERIES]:
        # It should list the rows on every log page, and search them.
        assert admin_answer(staff_client, url) == 200, url
    for url in [f"/admin/cronlogs/log/{rows[0].pk}/change/"] + [
        f"/admin/cronlogs/{PAGE_OF_TYPE[row.type]}/{row.pk}/change/" for row in rows
    ]:
        # It should open each row, with its context shown as JSON.
        response = staff_client.get(url)
        assert response.status_code == 200, url
        assert 'class="log-json"' in response.content.decode()


def test_it_shows_odd_values_as_they_are(staff_client):
    odd_row({"cronType": "cleanup-logs", "duration": "1200", "trigger": ["cron"]})
    odd_row({"cronType": "cleanup-logs", "duration": "soon"})
    odd_row({"bookingId": "#12<b>", "error": {"code": 500}}, Log.Type.EMAIL_ERROR)
    odd_row({"bookingId": 7, "error": 404}, Log.Type.EMAIL_ERROR)

    runs = unescape(staff_client.get("/admin/cronlogs/cronrun/").content.decode())
    # It should read a numeric text as milliseconds, and show any other value as it is.
    assert ">1.20s<" in runs and ">soon<" in runs and ">cron<" in runs
    emails = staff_client.get("/admin/cronlogs/emaillog/").content.decode()
    # It should link only a booking id this project could have written, and escape the rest.
    assert "#12&lt;b&gt;" in emails and "<b>" not in emails
    assert 'href="/admin/bookings/booking/7/change/"' in emails
    assert "{&#x27;code&#x27;: 500}" in emails and ">404<" in emails


# Text PostgreSQL can store in jsonb (no NUL) and Python can encode (no lone surrogates).
json_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | json_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(json_text, children, max_size=3)
    ),
    max_leaves=8,
)
# The keys the admin reads, so that odd values reach its display methods.
KNOWN_KEYS = [
    "cronType",
    "duration",
    "durationSeconds",
    "itemsProcessed",
    "trigger",
    "startTime",
    "endTime",
    "bookingId",
    "userId",
    "emailType",
    "recipientEmail",
    "roomId",
    "error",
]
contexts = st.one_of(json_values, st.dictionaries(st.sampled_from(KNOWN_KEYS), json_values))
PROXY_PAGES = {proxy._meta.model_name: proxy.TYPES for proxy in (CronRun, EmailLog, DailyRoomLog)}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    context=contexts,
    type=st.sampled_from([*Log.Type.values, "SOMETHING_NEW"]),
    status=st.sampled_from([*Log.Status.values, "WEIRD"]),
    level=st.sampled_from([*Log.Level.values, "DEBUG"]),
    message=json_text,
    error=st.none() | json_text,
)
def test_it_lists_and_opens_a_row_of_any_shape(
    staff_client, context, type, status, level, message, error
):
    # Each example in a savepoint that is rolled back: its row is gone for the next one.
    with transaction.atomic():
        row = Log.objects.create(
            type=type,
            status=status,
            level=level,
            message=message,
            error=error,
            context=Value(None, JSONField()) if context is None else context,
        )
        pages = ["log"] + [name for name, types in PROXY_PAGES.items() if type in types]
        for page in pages:
            listed = staff_client.get(f"/admin/cronlogs/{page}/")
            opened = staff_client.get(f"/admin/cronlogs/{page}/{row.pk}/change/")
            # It should list the row (the newest, so on the first page) and open it.
            assert listed.status_code == 200
            assert row.pk in [shown.pk for shown in listed.context["cl"].result_list]
            assert opened.status_code == 200
            assert 'class="log-json"' in opened.content.decode()
        transaction.set_rollback(True)
