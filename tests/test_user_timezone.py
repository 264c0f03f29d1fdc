"""The admin shows times in the signed-in person's own time zone."""

from datetime import UTC, datetime

import pytest

from cronlogs.logger import log_cron_run
from cronlogs.models import Log

pytestmark = pytest.mark.django_db


@pytest.fixture
def cron_run():
    row = log_cron_run("cleanup-logs", 3, 1200)
    Log.objects.filter(pk=row.pk).update(created_at=datetime(2026, 1, 15, 12, 30, tzinfo=UTC))
    return row


def test_it_shows_log_times_in_the_readers_time_zone(client, make_user, cron_run):
    tokyo = make_user(timezone="Asia/Tokyo", is_staff=True, is_superuser=True)
    client.force_login(tokyo)

    page = client.get("/admin/cronlogs/cronrun/").content.decode()

    # 12:30 UTC is 21:30 in Tokyo; the stored value stays UTC.
    assert "2026-01-15 21:30" in page
    assert "12:30" not in page
    assert Log.objects.get(pk=cron_run.pk).created_at.hour == 12


def test_it_names_the_readers_time_zone_on_the_jobs_page(client, make_user, cron_run):
    paris = make_user(timezone="Europe/Paris", is_staff=True, is_superuser=True)
    client.force_login(paris)

    page = client.get("/admin/cronlogs/cronjob/").content.decode()

    assert "Europe/Paris" in page
    assert "2026-01-15 13:30" in page
