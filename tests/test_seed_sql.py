"""The platform's "View Logs" SQL (seed/CRON_IMPROVEMENTS.md) runs unchanged on our table."""

import json

import pytest
from django.db import connection

from cronlogs import logger
from cronlogs.runner import run_job

pytestmark = [pytest.mark.django_db, pytest.mark.postgres_only]

SEED_QUERIES = {
    "recent cron runs": """
        SELECT * FROM "Log"
        WHERE type = 'CRON_RUN'
        ORDER BY "createdAt" DESC
        LIMIT 20;
    """,
    "recent cron errors": """
        SELECT * FROM "Log"
        WHERE type = 'CRON_ERROR'
        ORDER BY "createdAt" DESC
        LIMIT 20;
    """,
    "logs of one cron": """
        SELECT * FROM "Log"
        WHERE context->>'cronType' = 'cleanup-logs'
        ORDER BY "createdAt" DESC
        LIMIT 10;
    """,
    "recent email logs": """
        SELECT * FROM "Log"
        WHERE type IN ('EMAIL_SENT', 'EMAIL_ERROR')
        ORDER BY "createdAt" DESC
        LIMIT 20;
    """,
    "recent Daily room logs": """
        SELECT * FROM "Log"
        WHERE type IN ('DAILY_ROOM_DELETED', 'DAILY_ROOM_ERROR')
        ORDER BY "createdAt" DESC
        LIMIT 20;
    """,
}


def fetch(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        columns = [column.name for column in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        # Django's connection hands jsonb back as text for JSONField to decode.
        if isinstance(row.get("context"), str):
            row["context"] = json.loads(row["context"])
    return rows


@pytest.fixture
def written_rows(monkeypatch):
    from cronlogs import retention

    run_job("cleanup-logs")

    def broken(**kwargs):
        raise RuntimeError("Database connection failed")

    monkeypatch.setattr(retention, "retention_policy", broken)
    run_job("cleanup-logs")
    logger.log_email_sent(1, 2, "booking_reminder_client", {"recipientEmail": "c@example.com"})
    logger.log_email_error(1, 3, "booking_reminder_creator", "SMTP connection failed")
    logger.log_daily_room_deleted("room-abc-123", 1, {"deletedBy": "cron_job"})
    logger.log_daily_room_error("room-xyz-789", 2, "Room not found", {"operation": "delete"})


def test_it_answers_every_seed_query_with_the_rows_the_runner_wrote(written_rows):
    results = {name: fetch(sql) for name, sql in SEED_QUERIES.items()}

    # It should return the runner's rows, with the seed's column names, to each query.
    assert [row["type"] for row in results["recent cron runs"]] == ["CRON_RUN"]
    assert [row["type"] for row in results["recent cron errors"]] == ["CRON_ERROR"]
    # Each run of cleanup-logs also records its start, next to how it ended.
    assert [row["type"] for row in results["logs of one cron"]] == [
        "CRON_ERROR",
        "CRON_STARTED",
        "CRON_RUN",
        "CRON_STARTED",
    ]
    assert {row["type"] for row in results["recent email logs"]} == {"EMAIL_SENT", "EMAIL_ERROR"}
    assert {row["type"] for row in results["recent Daily room logs"]} == {
        "DAILY_ROOM_DELETED",
        "DAILY_ROOM_ERROR",
    }
    run = results["recent cron runs"][0]
    assert set(run) == {"id", "type", "status", "level", "message", "context", "error", "createdAt"}
    assert run["status"] == "SUCCESS"
    assert run["context"]["cronType"] == "cleanup-logs"
    error = results["recent cron errors"][0]
    assert error["context"]["error"] == "RuntimeError: Database connection failed"
    assert "Traceback" in error["error"]


def test_it_stores_context_as_jsonb():
    fetch("SELECT 1")
    type_name = fetch(
        """SELECT data_type FROM information_schema.columns
           WHERE table_name = 'Log' AND column_name = 'context'"""
    )[0]["data_type"]
    assert type_name == "jsonb"
