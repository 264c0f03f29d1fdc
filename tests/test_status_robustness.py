"""Monitoring never breaks: no Log row of any shape can make a status surface fail.

The Log table is shared with the platform's own writers, so rows about our jobs may hold
anything: a context that is a list, a string or JSON null, a `startTime` that is a number,
a `duration` that is text. Health, readiness, the Jobs page and `cron_status` must still
answer, with the odd values read as "unknown".
"""

import contextlib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Value
from django.db.models.fields.json import JSONField
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronlogs.models import Log

pytestmark = pytest.mark.django_db

JOB = "cleanup-logs"
ROW_TYPES = ["CRON_STARTED", "CRON_RUN", "CRON_ERROR", "CRON_SKIPPED", "CRON_PAUSED", "X"]

ODD_CONTEXTS = [
    {"cronType": JOB, "startTime": 12345, "duration": "1200"},
    {"cronType": JOB, "startTime": "yesterday", "itemsProcessed": "many", "error": ["a", 1]},
    {"cronType": JOB, "startTime": "2026-13-45T99:00:00Z", "duration": None},
    {"cronType": JOB, "startTime": "2026-01-01T00:00:00", "duration": -5},  # naive
    {"cronType": JOB, "duration": 1e308, "itemsProcessed": True, "outcome": {"x": 1}},
    {"cronType": JOB, "runId": 7, "pid": "abc", "host": ["x"], "maxRuntimeMinutes": "soon"},
    {"cronType": JOB, "pid": -1, "host": None, "maxRuntimeMinutes": -3},
    {"cronType": JOB, "pid": 10**30, "maxRuntimeMinutes": 1.44e12},  # would overflow timedelta
    {"cronType": JOB, "trigger": {"nested": [None]}, "itemsFailed": "two"},
    {"cronType": JOB, "startTime": "\u00a0", "error": "\ud7ff\U0001f600"},
]

# PostgreSQL cannot store a NUL character in jsonb, so no row can hold one.
TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
CONTEXTS = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {"cronType": st.just(JOB)},
        optional={
            key: JSON
            for key in (
                "startTime",
                "duration",
                "itemsProcessed",
                "error",
                "runId",
                "pid",
                "host",
                "outcome",
                "itemsFailed",
                "trigger",
                "maxRuntimeMinutes",
            )
        },
    ),
)


def write_row(row_type, context):
    row = Log.objects.create(
        type=row_type, status="SUCCESS", level="INFO", message="odd", context={}
    )
    if context is None:
        Log.objects.filter(pk=row.pk).update(context=Value(None, JSONField()))
    else:
        Log.objects.filter(pk=row.pk).update(context=context)


def assert_every_surface_answers(client, staff_client, cron_secret):
    for headers in ({}, cron_secret):
        health = client.get("/api/cron/health", headers=headers)
        assert health.status_code in (200, 503), health.content
        ready = client.get(f"/api/cron/{JOB}", headers=headers)
        assert ready.status_code == 200, ready.content
        assert ready.json()["cronType"] == JOB
    page = staff_client.get("/admin/cronlogs/cronjob/")
    assert page.status_code == 200
    assert f'id="job-{JOB}"' in page.content.decode()
    for flag in ([], ["--json"]):
        # Unhealthy (CommandError, exit 1) is an answer; any other exception would not be.
        with contextlib.suppress(CommandError):
            call_command("cron_status", *flag, stdout=StringIO())


@pytest.mark.parametrize("context", ODD_CONTEXTS)
@pytest.mark.parametrize("row_type", ROW_TYPES)
def test_it_answers_on_every_surface_whatever_a_row_holds(
    client, staff_client, cron_secret, row_type, context
):
    write_row(row_type, context)

    assert_every_surface_answers(client, staff_client, cron_secret)


@pytest.mark.parametrize("context", [None, [], [1, 2], "text", 42, 3.5, True])
def test_it_answers_when_a_context_is_not_an_object(client, staff_client, cron_secret, context):
    # Rows of our types whose context is not even an object (they match no job).
    for row_type in ROW_TYPES:
        write_row(row_type, context)

    assert_every_surface_answers(client, staff_client, cron_secret)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(st.tuples(st.sampled_from(ROW_TYPES), CONTEXTS), min_size=1, max_size=4))
def test_it_answers_for_any_rows_at_all(client, staff_client, cron_secret, rows):
    Log.objects.all().delete()
    for row_type, context in rows:
        write_row(row_type, context)

    assert_every_surface_answers(client, staff_client, cron_secret)
